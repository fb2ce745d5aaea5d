// Development only (`npm run dev`, `npm run preview`): answers the console's admin API from
// the contract's shapes (docs/console.md), so the pages can be worked on without a gateway.
// The admin key here is `mock-admin-key`. Never part of the build.
const ADMIN_KEY = 'mock-admin-key';
const started = Date.now();

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function status() {
  return {
    version: '0.0.0-mock',
    started_at: new Date(started).toISOString(),
    uptime_seconds: Math.round((Date.now() - started) / 1000),
    accounts: [
      {
        name: 'demo', auth: 'access-key', region: 'us-east-1', endpoint: 'http://127.0.0.1:9999',
        credentials: { state: 'valid', valid_until: null, last_refresh: null, last_error: null },
      },
      {
        name: 'prod', auth: 'assume-role', region: 'eu-west-1', endpoint: null,
        credentials: {
          state: 'error', valid_until: '2026-12-03T08:00:00Z', last_refresh: '2026-12-03T07:00:00Z',
          last_error: 'AccessDenied: not authorized to perform sts:AssumeRole',
        },
      },
    ],
    circuit_breakers: [
      { target: 'demo/claude-3', state: 'closed' },
      { target: 'demo-east/claude-3', state: 'open' },
    ],
    limits: { backend: 'memory', state: 'ok', last_error: null },
    telemetry: { otlp: 'off', export_failures: 0 },
    ready: true,
  };
}

function routes() {
  return {
    models: [
      {
        name: 'demo/claude-3', kind: 'chat', account: 'demo', region: 'us-east-1',
        model_id: 'anthropic.claude-3-sonnet-20240229-v1:0', inference_profile: null,
        guardrail: null, price: { input_per_million_usd: 3.0, output_per_million_usd: 15.0 },
      },
      {
        name: 'demo/guarded', kind: 'chat', account: 'demo', region: 'us-east-1',
        model_id: 'demo.guardrail-mask', inference_profile: null,
        guardrail: { id: 'demo-pii', version: '1', mode: 'default' }, price: null,
      },
      {
        name: 'demo/titan-embed', kind: 'embedding', account: 'demo', region: 'us-east-1',
        model_id: 'amazon.titan-embed-text-v2:0', inference_profile: null, guardrail: null,
        price: { input_per_million_usd: 0.02, output_per_million_usd: 0.0 },
      },
    ],
    virtual_models: [
      {
        name: 'claude-ha', strategy: 'failover',
        targets: [{ target: 'demo-east/claude-3', weight: 1 }, { target: 'demo-west/claude-3', weight: 1 }],
      },
    ],
    keys: [
      { name: 'demo', limits: { rpm: 60, tpm: null, budget_usd: 5 }, spend_usd: 0.0123, spend_source: 'this replica' },
    ],
    guardrails: [{ name: 'pii', account: 'demo' }],
  };
}

function traffic(minutes) {
  const n = (minutes * 60) / 5;
  const now = Math.floor(Date.now() / 5000) * 5;
  const timestamps = Array.from({ length: n }, (_, i) => now - (n - 1 - i) * 5);
  const wave = (scale, phase) => timestamps.map((t) => Math.max(0, scale * (1 + Math.sin(t / 60 + phase))));
  const model = (name, phase) => ({
    model: name,
    requests_per_second: wave(2, phase),
    errors_per_second: wave(0.1, phase + 1),
    guardrail_interventions_per_second: wave(0.3, phase + 2),
    latency_ms: { p50: wave(120, phase), p95: wave(300, phase), p99: timestamps.map((_, i) => (i % 7 ? 500 : null)) },
  });
  const models = [model('demo/claude-3', 0), model('demo/guarded', 2)];
  return {
    interval_seconds: 5,
    timestamps,
    models,
    totals: {
      requests_per_second: timestamps.map((_, i) => models.reduce((s, m) => s + m.requests_per_second[i], 0)),
      errors_per_second: timestamps.map((_, i) => models.reduce((s, m) => s + m.errors_per_second[i], 0)),
    },
  };
}

function handle(req, res, next) {
  if (!req.url.startsWith('/console/api/')) return next();
  const url = new URL(req.url, 'http://mock');
  const send = (status, body) => {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  };
  if (req.headers.authorization !== `Bearer ${ADMIN_KEY}`) {
    return send(401, { error: { message: 'invalid admin key', type: 'invalid_request_error', code: 'invalid_admin_key' } });
  }
  switch (url.pathname) {
    case '/console/api/status': return send(200, status());
    case '/console/api/routes': return send(200, routes());
    case '/console/api/traffic': return send(200, traffic(Number(url.searchParams.get('minutes') ?? 15)));
    default: return send(404, { error: { message: 'not found', type: 'invalid_request_error', code: 'not_found' } });
  }
}

// The built pages get the gateway's CSP, so a violation shows in preview as it would in the
// gateway; the dev server injects CSS through <style> elements and cannot run under it.
function withCsp(req, res, next) {
  if (req.url.startsWith('/console')) res.setHeader('content-security-policy', CSP);
  next();
}

export function mockApi() {
  return {
    name: 'console-mock-api',
    configureServer(server) { server.middlewares.use(handle); },
    configurePreviewServer(server) { server.middlewares.use(handle); },
  };
}

export function previewCsp() {
  return {
    name: 'console-preview-csp',
    configurePreviewServer(server) { server.middlewares.use(withCsp); },
  };
}
