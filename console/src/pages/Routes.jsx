import { useApi } from '../poll.js';
import { Loading, orDash, usd } from '../format.jsx';

function price(p) {
  if (!p) return '–';
  return `${usd(p.input_per_million_usd, 4)} in / ${usd(p.output_per_million_usd, 4)} out per 1M`;
}

function guardrail(g) {
  if (!g) return '–';
  return (
    <>
      <span class="mono">{g.id}</span> v{g.version} <span class="badge neutral">{g.mode}</span>
    </>
  );
}

function limit(value, unit = '') {
  return value == null ? 'unlimited' : `${unit}${value}`;
}

export function Routes({ onUnauthorized }) {
  const { data, error } = useApi('routes', onUnauthorized);
  if (!data) return <Loading error={error} />;
  return (
    <>
      <h2>Models</h2>
      <div class="table-wrap">
        <table data-testid="models">
          <thead>
            <tr>
              <th>Model</th><th>Kind</th><th>Account</th><th>Region</th><th>Bedrock model / profile</th>
              <th>Guardrail</th><th>Price</th>
            </tr>
          </thead>
          <tbody>
            {data.models.map((model) => (
              <tr data-testid={`model-${model.name}`}>
                <td class="name">{model.name}</td>
                <td>{model.kind}</td>
                <td>{model.account}</td>
                <td>{model.region}</td>
                <td class="mono">
                  {model.inference_profile ?? model.model_id}
                  {model.inference_profile && <span class="muted small"> (profile of {model.model_id})</span>}
                </td>
                <td>{guardrail(model.guardrail)}</td>
                <td>{price(model.price)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      <h2>Virtual models</h2>
      {data.virtual_models.length === 0 ? (
        <p class="muted">No virtual models configured.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="virtual-models">
            <thead><tr><th>Virtual model</th><th>Strategy</th><th>Targets</th></tr></thead>
            <tbody>
              {data.virtual_models.map((virtual) => (
                <tr>
                  <td class="name">{virtual.name}</td>
                  <td>{virtual.strategy}</td>
                  <td>
                    {virtual.targets.map((t, i) => (
                      <span class="target">
                        {i > 0 && (virtual.strategy === 'failover' ? ' → ' : ', ')}
                        <span class="mono">{t.target}</span>
                        {virtual.strategy === 'weighted' && <span class="muted"> ×{t.weight}</span>}
                      </span>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Gateway keys</h2>
      <div class="table-wrap">
        <table data-testid="keys">
          <thead>
            <tr><th>Key name</th><th>Requests/min</th><th>Tokens/min</th><th>Budget</th><th>Spend</th></tr>
          </thead>
          <tbody>
            {data.keys.map((key) => (
              <tr>
                <td class="name">{key.name}</td>
                <td>{limit(key.limits.rpm)}</td>
                <td>{limit(key.limits.tpm)}</td>
                <td>{key.limits.budget_usd == null ? 'unlimited' : usd(key.limits.budget_usd, 2)}</td>
                <td>
                  {usd(key.spend_usd)} <span class="muted small">({orDash(key.spend_source)})</span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>

      {data.guardrails?.length > 0 && (
        <>
          <h2>Guardrails for checks</h2>
          <div class="table-wrap">
            <table data-testid="guardrails">
              <thead><tr><th>Name</th><th>Account</th></tr></thead>
              <tbody>
                {data.guardrails.map((g) => (
                  <tr><td class="name">{g.name}</td><td>{g.account}</td></tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}
