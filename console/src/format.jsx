// Small display helpers shared by the pages.

export function duration(seconds) {
  if (seconds == null) return '–';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function time(rfc3339) {
  if (!rfc3339) return '–';
  const date = new Date(rfc3339);
  return Number.isNaN(date.getTime()) ? rfc3339 : date.toLocaleString();
}

export function usd(value, digits = 6) {
  if (value == null) return '–';
  return `$${Number(value).toFixed(digits).replace(/0+$/, '').replace(/\.$/, '.00')}`;
}

export function orDash(value) {
  return value == null || value === '' ? '–' : String(value);
}

/** A state word as a coloured badge: good, bad or neutral by the word. */
const GOOD = new Set(['valid', 'closed', 'ok', 'on', 'ready', 'true']);
const BAD = new Set(['expired', 'error', 'open', 'not ready', 'false']);
export function Badge({ value, testid }) {
  const word = String(value);
  const tone = GOOD.has(word) ? 'good' : BAD.has(word) ? 'bad' : 'neutral';
  return (
    <span class={`badge ${tone}`} data-testid={testid}>
      {word}
    </span>
  );
}

export function Loading({ error }) {
  return error ? <p class="error" role="alert">{error}</p> : <p class="muted">Loading…</p>;
}
