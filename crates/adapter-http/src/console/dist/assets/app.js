// Placeholder until the console's app is built from console/ (npm run build).
document.getElementById("app")?.setAttribute("data-placeholder", "true");
