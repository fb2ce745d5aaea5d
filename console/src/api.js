// The admin API client. The admin key lives in sessionStorage only (never a cookie, never
// localStorage): it ends with the tab, and nothing ambient rides on cross-site requests.
const ADMIN_KEY = 'gateway-console.admin-key';

export const adminKey = {
  get: () => sessionStorage.getItem(ADMIN_KEY),
  set: (key) => sessionStorage.setItem(ADMIN_KEY, key),
  clear: () => sessionStorage.removeItem(ADMIN_KEY),
};

/** An admin API answer that is not 2xx; `status` 401 means the key was refused. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The OpenAI-shaped error's message, or the status line when the body is not one. */
export async function errorMessage(response) {
  const text = await response.text();
  try {
    const message = JSON.parse(text)?.error?.message;
    if (message) return message;
  } catch {
    // not JSON: the text itself says it
  }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/** GET /console/api/<path> with `key` (default: the stored admin key). */
export async function getApi(path, key = adminKey.get()) {
  const response = await fetch(`/console/api/${path}`, {
    headers: { authorization: `Bearer ${key ?? ''}`, accept: 'application/json' },
    cache: 'no-store',
  });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response.json();
}
