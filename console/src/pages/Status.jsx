import { useApi } from '../poll.js';
import { Badge, duration, Loading, orDash, time } from '../format.jsx';

export function Status({ onUnauthorized }) {
  const { data, error } = useApi('status', onUnauthorized, 5000);
  if (!data) return <Loading error={error} />;
  return (
    <>
      {error && <p class="error" role="alert">Refresh failed: {error}</p>}
      <section class="cards">
        <div class="card">
          <span class="label">Version</span>
          <span class="value" data-testid="version">{data.version}</span>
        </div>
        <div class="card">
          <span class="label">Uptime</span>
          <span class="value" title={`since ${time(data.started_at)}`}>{duration(data.uptime_seconds)}</span>
        </div>
        <div class="card">
          <span class="label">Ready</span>
          <span class="value"><Badge value={data.ready ? 'ready' : 'not ready'} testid="ready" /></span>
        </div>
        <div class="card">
          <span class="label">Limits ({data.limits.backend})</span>
          <span class="value"><Badge value={data.limits.state} /></span>
          {data.limits.last_error && <span class="error small">{data.limits.last_error}</span>}
        </div>
        <div class="card">
          <span class="label">Telemetry (OTLP)</span>
          <span class="value"><Badge value={data.telemetry.otlp} /></span>
          <span class="small muted">export failures: {data.telemetry.export_failures}</span>
        </div>
      </section>

      <h2>Accounts</h2>
      <div class="table-wrap">
        <table data-testid="accounts">
          <thead>
            <tr>
              <th>Account</th><th>Auth</th><th>Region</th><th>Endpoint</th><th>Credentials</th>
              <th>Valid until</th><th>Last refresh</th><th>Last error</th>
            </tr>
          </thead>
          <tbody>
            {data.accounts.map((account) => (
              <tr data-testid={`account-${account.name}`}>
                <td class="name">{account.name}</td>
                <td>{account.auth}</td>
                <td>{account.region}</td>
                <td class="mono">{account.endpoint ?? 'AWS'}</td>
                <td><Badge value={account.credentials.state} /></td>
                <td>{time(account.credentials.valid_until)}</td>
                <td>{time(account.credentials.last_refresh)}</td>
                <td class="error">{orDash(account.credentials.last_error)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Circuit breakers</h2>
      {data.circuit_breakers.length === 0 ? (
        <p class="muted">No circuit breakers configured.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="circuit-breakers">
            <thead><tr><th>Target</th><th>State</th></tr></thead>
            <tbody>
              {data.circuit_breakers.map((breaker) => (
                <tr><td class="name">{breaker.target}</td><td><Badge value={breaker.state} /></td></tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
