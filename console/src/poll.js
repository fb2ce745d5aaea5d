import { useEffect, useState } from 'preact/hooks';
import { ApiError, getApi } from './api.js';

/**
 * GETs an admin API path now and every `everyMs` (when given) while the page is shown.
 * A refused key signs out (the key may have been removed from the config and reloaded).
 */
export function useApi(path, onUnauthorized, everyMs) {
  const [state, setState] = useState({ data: null, error: null });
  useEffect(() => {
    let live = true;
    const load = async () => {
      try {
        const data = await getApi(path);
        if (live) setState({ data, error: null });
      } catch (e) {
        if (!live) return;
        if (e instanceof ApiError && e.status === 401) onUnauthorized();
        else setState((old) => ({ data: old.data, error: e.message }));
      }
    };
    load();
    const timer = everyMs ? setInterval(load, everyMs) : null;
    return () => {
      live = false;
      if (timer) clearInterval(timer);
    };
  }, [path]);
  return state;
}
