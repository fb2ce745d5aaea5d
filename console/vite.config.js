// Builds the console into the gateway's crate, where the server embeds it (include_bytes!).
// Fixed file names (no hashes): the server serves exactly index.html, assets/app.js and
// assets/app.css. The CSP allows only same-origin scripts and styles, so nothing inline: no
// module-preload polyfill, CSS in its own file.
import { defineConfig } from 'vite';
import { mockApi, previewCsp } from './mock/api.js';

const gateway = process.env.GATEWAY_URL;

function proxy() {
  const target = gateway ?? 'http://127.0.0.1:8080';
  return gateway ? { '/v1': target, '/console/api': target } : { '/v1': target };
}

export default defineConfig({
  base: '/console/',
  oxc: {
    jsx: { runtime: 'automatic', importSource: 'preact' },
  },
  build: {
    outDir: '../crates/adapter-http/src/console/dist',
    emptyOutDir: true,
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    sourcemap: false,
    target: 'es2022',
    rolldownOptions: {
      output: {
        entryFileNames: 'assets/app.js',
        chunkFileNames: 'assets/[name].js',
        assetFileNames: (asset) =>
          asset.names.some((name) => name.endsWith('.css')) ? 'assets/app.css' : 'assets/[name][extname]',
      },
    },
  },
  // `npm run dev` / `npm run preview`: with GATEWAY_URL set, every API call goes to that
  // gateway (a `gateway demo`, say); without it the admin API is answered from fixtures
  // (mock/) and /v1 goes to http://127.0.0.1:8080.
  plugins: [previewCsp(), ...(gateway ? [] : [mockApi()])],
  server: { proxy: proxy() },
  preview: { proxy: proxy() },
});
