import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { useApi } from '../poll.js';
import { errorMessage } from '../api.js';
import { Loading, usd } from '../format.jsx';
import { chatBody, SNIPPETS } from '../playground/request.js';
import { sseData } from '../playground/sse.js';

// The playground calls the public API with a gateway key, exactly as any client would: the
// admin key is not sent and grants nothing here. The key stays in this tab (sessionStorage).
const GATEWAY_KEY = 'gateway-console.gateway-key';
const EFFORTS = ['', 'minimal', 'low', 'medium', 'high'];

function chatModels(routes) {
  return [
    ...routes.models.filter((m) => m.kind === 'chat').map((m) => m.name),
    ...routes.virtual_models.map((v) => v.name),
  ];
}

export function Playground({ onUnauthorized }) {
  const { data: routes, error } = useApi('routes', onUnauthorized);
  if (!routes) return <Loading error={error} />;
  return <PlaygroundForm routes={routes} />;
}

function PlaygroundForm({ routes }) {
  const models = useMemo(() => chatModels(routes), [routes]);
  const [gatewayKey, setGatewayKey] = useState(() => sessionStorage.getItem(GATEWAY_KEY) ?? '');
  const [form, setForm] = useState({
    model: models[0] ?? '',
    system: '',
    turns: [{ role: 'user', content: '' }],
    reasoningEffort: '',
    stream: true,
    guardrail: { enabled: false, identifier: '', version: '1', trace: true },
  });
  const [result, setResult] = useState(null);
  const [snippet, setSnippet] = useState(null);
  const abort = useRef(null);
  // Leaving the page stops a request still running.
  useEffect(() => () => abort.current?.abort(), []);

  const set = (patch) => setForm((old) => ({ ...old, ...patch }));
  const setGuardrail = (patch) => setForm((old) => ({ ...old, guardrail: { ...old.guardrail, ...patch } }));
  const setTurn = (index, patch) =>
    setForm((old) => ({ ...old, turns: old.turns.map((t, i) => (i === index ? { ...t, ...patch } : t)) }));
  const addTurn = () =>
    setForm((old) => {
      const last = old.turns[old.turns.length - 1];
      const role = last?.role === 'user' ? 'assistant' : 'user';
      return { ...old, turns: [...old.turns, { role, content: '' }] };
    });
  const removeTurn = (index) => setForm((old) => ({ ...old, turns: old.turns.filter((_, i) => i !== index) }));
  // The answer becomes the assistant's turn and an empty user turn follows: a conversation.
  const continueWith = (answer) =>
    setForm((old) => ({
      ...old,
      turns: [...old.turns, { role: 'assistant', content: answer }, { role: 'user', content: '' }],
    }));

  const configured = routes.models.find((m) => m.name === form.model)?.guardrail;
  const body = chatBody(form);
  const baseUrl = `${location.origin}/v1`;

  const send = async (event) => {
    event.preventDefault();
    sessionStorage.setItem(GATEWAY_KEY, gatewayKey);
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    await run(body, gatewayKey, controller.signal, setResult);
    if (abort.current === controller) abort.current = null;
  };

  return (
    <div class="playground">
      <form class="panel" onSubmit={send} data-testid="playground-form">
        <label for="gateway-key">Gateway key</label>
        <input
          id="gateway-key"
          type="password"
          autocomplete="off"
          placeholder="a key of [auth] keys"
          value={gatewayKey}
          onInput={(e) => setGatewayKey(e.currentTarget.value)}
        />

        <label for="model">Model</label>
        <select id="model" value={form.model} onChange={(e) => set({ model: e.currentTarget.value })}>
          {models.map((name) => (
            <option value={name}>{name}</option>
          ))}
        </select>
        {configured && (
          <p class="hint">
            Configured guardrail: <span class="mono">{configured.id}</span> v{configured.version} ({configured.mode})
          </p>
        )}

        <label for="system">System message</label>
        <textarea id="system" rows="2" value={form.system} onInput={(e) => set({ system: e.currentTarget.value })} />

        {form.turns.map((turn, index) => (
          <div class="turn" data-testid={`turn-${index + 1}`}>
            <div class="turn-head">
              <label for={`turn-${index + 1}`}>Message {index + 1}</label>
              <select
                aria-label={`Role of message ${index + 1}`}
                value={turn.role}
                onChange={(e) => setTurn(index, { role: e.currentTarget.value })}
              >
                <option value="user">user</option>
                <option value="assistant">assistant</option>
              </select>
              {form.turns.length > 1 && (
                <button
                  type="button"
                  class="secondary small"
                  aria-label={`Remove message ${index + 1}`}
                  onClick={() => removeTurn(index)}
                >
                  Remove
                </button>
              )}
            </div>
            <textarea
              id={`turn-${index + 1}`}
              rows="3"
              value={turn.content}
              onInput={(e) => setTurn(index, { content: e.currentTarget.value })}
            />
          </div>
        ))}
        <button type="button" class="secondary" onClick={addTurn}>Add message</button>

        <fieldset>
          <legend>Options</legend>
          <Check id="stream" checked={form.stream} onChange={(stream) => set({ stream })}>
            Stream
          </Check>
          <label for="reasoning-effort">Reasoning effort</label>
          <select
            id="reasoning-effort"
            value={form.reasoningEffort}
            onChange={(e) => set({ reasoningEffort: e.currentTarget.value })}
          >
            {EFFORTS.map((effort) => (
              <option value={effort}>{effort || '(none)'}</option>
            ))}
          </select>
          <Check id="guardrail-enabled" checked={form.guardrail.enabled} onChange={(enabled) => setGuardrail({ enabled })}>
            Attach a guardrail (guardrailConfig)
          </Check>
          {form.guardrail.enabled && (
            <div class="guardrail">
              <label for="guardrail-id">Guardrail identifier</label>
              <input
                id="guardrail-id"
                required
                placeholder="id or ARN"
                value={form.guardrail.identifier}
                onInput={(e) => setGuardrail({ identifier: e.currentTarget.value })}
              />
              <label for="guardrail-version">Guardrail version</label>
              <input
                id="guardrail-version"
                required
                value={form.guardrail.version}
                onInput={(e) => setGuardrail({ version: e.currentTarget.value })}
              />
              <Check id="guardrail-trace" checked={form.guardrail.trace} onChange={(trace) => setGuardrail({ trace })}>
                Guardrail trace
              </Check>
            </div>
          )}
        </fieldset>

        <div class="actions">
          <button type="submit" data-testid="send">Send</button>
          {result?.running && (
            <button type="button" class="secondary" onClick={() => abort.current?.abort()}>Stop</button>
          )}
        </div>

        <div class="copy-as" role="group" aria-label="Copy as code">
          <span class="muted small">Copy as</span>
          {SNIPPETS.map((s) => (
            <button
              type="button"
              class={`secondary small${snippet === s.id ? ' active' : ''}`}
              onClick={() => setSnippet(snippet === s.id ? null : s.id)}
            >
              {s.title}
            </button>
          ))}
        </div>
        {snippet && <Snippet code={SNIPPETS.find((s) => s.id === snippet).make(body, baseUrl)} />}
      </form>

      <Result result={result} onContinue={continueWith} />
    </div>
  );
}

/** A checkbox inside its label, so the label names it. */
function Check({ id, checked, onChange, children }) {
  return (
    <label class="check">
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.currentTarget.checked)} />
      {children}
    </label>
  );
}

function Snippet({ code }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code);
      setCopied(true);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div class="snippet">
      <button type="button" class="secondary small" onClick={copy}>{copied ? 'Copied' : 'Copy'}</button>
      <pre data-testid="snippet">{code}</pre>
      <p class="hint">Set <code>GATEWAY_KEY</code> in the environment first; the typed key is never in the code.</p>
    </div>
  );
}

/** Sends the request and reports progress through `update` after every chunk. */
async function run(body, key, signal, update) {
  const started = performance.now();
  const state = {
    running: true, status: null, target: null, content: '', reasoning: '', toolCalls: [],
    finishReason: null, bedrockStopReason: null, usage: null, cost: null, trace: null,
    firstTokenMs: null, totalMs: null, chunks: 0, error: null,
  };
  const publish = () => update({ ...state, toolCalls: [...state.toolCalls] });
  const firstToken = () => {
    if (state.firstTokenMs === null) state.firstTokenMs = performance.now() - started;
  };
  publish();
  try {
    const response = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal,
    });
    state.status = response.status;
    state.target = response.headers.get('x-gateway-target');
    const costHeader = response.headers.get('x-gateway-cost-usd');
    if (costHeader !== null) state.cost = Number(costHeader);
    if (!response.ok) {
      state.error = await errorMessage(response);
    } else if (body.stream) {
      for await (const data of sseData(response.body)) {
        const chunk = JSON.parse(data);
        state.chunks += 1;
        if (chunk.error) {
          state.error = chunk.error.message ?? JSON.stringify(chunk.error);
          break;
        }
        for (const choice of chunk.choices ?? []) {
          const delta = choice.delta ?? {};
          if (delta.content) {
            firstToken();
            state.content += delta.content;
          }
          if (delta.reasoning_content) {
            firstToken();
            state.reasoning += delta.reasoning_content;
          }
          for (const call of delta.tool_calls ?? []) mergeToolCall(state.toolCalls, call);
          if (choice.finish_reason) state.finishReason = choice.finish_reason;
          if (choice.bedrock_stop_reason) state.bedrockStopReason = choice.bedrock_stop_reason;
        }
        if (chunk.usage) {
          state.usage = chunk.usage;
          if (chunk.usage.cost_usd != null) state.cost = chunk.usage.cost_usd;
        }
        if (chunk.guardrail_trace) state.trace = chunk.guardrail_trace;
        publish();
      }
    } else {
      const answer = await response.json();
      firstToken();
      const choice = answer.choices?.[0] ?? {};
      state.content = choice.message?.content ?? '';
      state.reasoning = choice.message?.reasoning_content ?? '';
      state.toolCalls = (choice.message?.tool_calls ?? []).map((c) => ({ ...c }));
      state.finishReason = choice.finish_reason ?? null;
      state.bedrockStopReason = choice.bedrock_stop_reason ?? null;
      state.usage = answer.usage ?? null;
      if (answer.usage?.cost_usd != null) state.cost = answer.usage.cost_usd;
      state.trace = answer.guardrail_trace ?? null;
    }
  } catch (e) {
    state.error = e.name === 'AbortError' ? 'stopped' : e.message;
  }
  state.running = false;
  state.totalMs = performance.now() - started;
  publish();
}

function mergeToolCall(calls, delta) {
  const index = delta.index ?? calls.length;
  const call = (calls[index] ??= { id: delta.id, type: 'function', function: { name: '', arguments: '' } });
  if (delta.id) call.id = delta.id;
  if (delta.function?.name) call.function.name += delta.function.name;
  if (delta.function?.arguments) call.function.arguments += delta.function.arguments;
}

function ms(value) {
  return value == null ? '–' : `${Math.round(value)} ms`;
}

function Result({ result, onContinue }) {
  if (!result) {
    return (
      <section class="panel result">
        <p class="muted">The answer appears here as it streams.</p>
      </section>
    );
  }
  const intervened = result.finishReason === 'guardrail_intervened';
  return (
    <section class="panel result" aria-live="polite" data-testid="result" data-running={String(result.running)}>
      <div class="result-head">
        {result.status !== null && <span class="badge neutral">HTTP {result.status}</span>}
        {result.target && <span class="muted small">answered by <span class="mono">{result.target}</span></span>}
        {result.running && <span class="muted small">streaming…</span>}
      </div>
      {result.error && (
        <p class="error" role="alert" data-testid="result-error">{result.error}</p>
      )}
      {result.finishReason && (
        <p class={`finish${intervened ? ' intervened' : ''}`}>
          finish_reason: <span data-testid="finish-reason">{result.finishReason}</span>
          {result.bedrockStopReason && result.bedrockStopReason !== result.finishReason && (
            <span class="muted small"> (Bedrock: {result.bedrockStopReason})</span>
          )}
          {intervened && <span class="small"> — the guardrail intervened; the text below is what it let through (masked).</span>}
        </p>
      )}
      {result.reasoning && (
        <details>
          <summary>Reasoning</summary>
          <pre class="reasoning" data-testid="reasoning">{result.reasoning}</pre>
        </details>
      )}
      <pre class={`answer${intervened ? ' masked' : ''}`} data-testid="answer" data-chunks={result.chunks}>
        {result.content}
      </pre>
      {result.toolCalls.length > 0 && (
        <>
          <h3>Tool calls</h3>
          <pre class="json">{JSON.stringify(result.toolCalls, null, 2)}</pre>
        </>
      )}
      {!result.running && !result.error && result.content && (
        <button type="button" class="secondary small" onClick={() => onContinue(result.content)}>
          Continue the conversation
        </button>
      )}
      {result.trace && (
        <details data-testid="guardrail-trace">
          <summary>Guardrail trace</summary>
          <pre class="json">{JSON.stringify(result.trace, null, 2)}</pre>
        </details>
      )}
      <dl class="metrics">
        <dt>Prompt tokens</dt><dd>{result.usage?.prompt_tokens ?? '–'}</dd>
        <dt>Completion tokens</dt><dd>{result.usage?.completion_tokens ?? '–'}</dd>
        <dt>Total tokens</dt><dd data-testid="total-tokens">{result.usage?.total_tokens ?? '–'}</dd>
        <dt>Cost</dt><dd data-testid="cost">{result.cost == null ? 'no price' : usd(result.cost, 8)}</dd>
        <dt>Time to first token</dt><dd data-testid="ttft">{ms(result.firstTokenMs)}</dd>
        <dt>Total time</dt><dd data-testid="total-time">{ms(result.totalMs)}</dd>
      </dl>
    </section>
  );
}
