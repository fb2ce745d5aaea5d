import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { adminKey, ApiError, getApi } from './api.js';
import { Status } from './pages/Status.jsx';
import { Routes } from './pages/Routes.jsx';
import { Playground } from './pages/Playground.jsx';
import { Traffic } from './pages/Traffic.jsx';
import './style.css';

const PAGES = [
  { path: 'status', title: 'Status', Page: Status },
  { path: 'routes', title: 'Routes', Page: Routes },
  { path: 'playground', title: 'Playground', Page: Playground },
  { path: 'traffic', title: 'Traffic', Page: Traffic },
];

function currentPath() {
  const path = location.hash.replace(/^#\/?/, '');
  return PAGES.some((page) => page.path === path) ? path : 'status';
}

function useHashRoute() {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const update = () => setPath(currentPath());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return path;
}

function Login({ onLogin }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await getApi('status', key);
      adminKey.set(key);
      onLogin();
    } catch (e) {
      setError(e instanceof ApiError && e.status === 401 ? 'wrong admin key' : e.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form onSubmit={submit} data-testid="login-form">
        <h1>Gateway console</h1>
        <label for="admin-key">Admin key</label>
        <input
          id="admin-key"
          type="password"
          autocomplete="off"
          required
          value={key}
          onInput={(e) => setKey(e.currentTarget.value)}
        />
        <button type="submit" disabled={busy}>Sign in</button>
        {error && <p class="error" role="alert" data-testid="login-error">{error}</p>}
        <p class="hint">The key is one of <code>[console] admin_keys</code>; it stays in this tab only.</p>
      </form>
    </main>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(() => adminKey.get() !== null);
  const path = useHashRoute();
  const signOut = () => {
    adminKey.clear();
    setSignedIn(false);
  };
  if (!signedIn) return <Login onLogin={() => setSignedIn(true)} />;
  const { Page, title } = PAGES.find((page) => page.path === path);
  return (
    <div class="shell">
      <header>
        <span class="brand">AI gateway</span>
        <nav aria-label="Pages">
          {PAGES.map((page) => (
            <a
              href={`#/${page.path}`}
              class={page.path === path ? 'active' : undefined}
              aria-current={page.path === path ? 'page' : undefined}
            >
              {page.title}
            </a>
          ))}
        </nav>
        <button type="button" class="secondary" onClick={signOut}>Sign out</button>
      </header>
      <main data-testid={`page-${path}`}>
        <h1>{title}</h1>
        <Page onUnauthorized={signOut} />
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app'));
