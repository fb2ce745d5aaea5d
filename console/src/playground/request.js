// The playground's request: the body it sends to /v1/chat/completions, and the same request
// as code to paste (curl, the OpenAI Python SDK, LangChain). The snippets never contain the
// typed gateway key: they read it from $GATEWAY_KEY / os.environ["GATEWAY_KEY"].

/**
 * The chat completion body for the form. `guardrailConfig` is the gateway's extension field
 * (docs/guardrails.md); the SDKs send it through `extra_body`.
 */
export function chatBody(form) {
  const messages = [];
  if (form.system.trim()) messages.push({ role: 'system', content: form.system });
  for (const turn of form.turns) messages.push({ role: turn.role, content: turn.content });
  const body = { model: form.model, messages };
  if (form.reasoningEffort) body.reasoning_effort = form.reasoningEffort;
  if (form.stream) {
    body.stream = true;
    // The last chunk then carries usage (and its cost), as a non-streamed answer does.
    body.stream_options = { include_usage: true };
  }
  if (form.guardrail.enabled) body.guardrailConfig = guardrailConfig(form.guardrail);
  return body;
}

function guardrailConfig(guardrail) {
  return {
    guardrailIdentifier: guardrail.identifier.trim(),
    guardrailVersion: guardrail.version.trim(),
    trace: guardrail.trace ? 'enabled' : 'disabled',
  };
}

const shellQuote = (text) => `'${text.replaceAll("'", `'\\''`)}'`;

export function curlSnippet(body, baseUrl) {
  return [
    `curl${body.stream ? ' -N' : ''} ${baseUrl}/chat/completions \\`,
    `  -H "Authorization: Bearer $GATEWAY_KEY" -H "Content-Type: application/json" \\`,
    `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
  ].join('\n');
}

/** A JSON value as a Python literal (JSON strings are valid Python strings). */
export function python(value, indent = '') {
  if (value === null || value === undefined) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  if (typeof value === 'number' || typeof value === 'string') return JSON.stringify(value);
  const inner = `${indent}    `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((v) => `${inner}${python(v, inner)},`).join('\n')}\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${python(v, inner)},`).join('\n')}\n${indent}}`;
}

export function openaiSnippet(body, baseUrl) {
  const args = [`    model=${python(body.model)},`, `    messages=${python(body.messages, '    ')},`];
  if (body.reasoning_effort) args.push(`    reasoning_effort=${python(body.reasoning_effort)},`);
  if (body.stream) args.push('    stream=True,', '    stream_options={"include_usage": True},');
  if (body.guardrailConfig) {
    args.push(`    extra_body={"guardrailConfig": ${python(body.guardrailConfig, '    ')}},`);
  }
  const lines = [
    'import os',
    '',
    'from openai import OpenAI',
    '',
    `client = OpenAI(base_url=${python(baseUrl)}, api_key=os.environ["GATEWAY_KEY"])`,
    'response = client.chat.completions.create(',
    ...args,
    ')',
  ];
  if (body.stream) {
    lines.push(
      'for chunk in response:',
      '    for choice in chunk.choices:',
      '        print(choice.delta.content or "", end="", flush=True)',
      '        if choice.finish_reason:',
      '            print("\\nfinish_reason:", choice.finish_reason)',
      '    if chunk.usage:',
      '        print("usage:", chunk.usage)',
    );
  } else {
    lines.push(
      'print(response.choices[0].finish_reason)',
      'print(response.choices[0].message.content)',
      'print(response.usage)',
    );
  }
  return lines.join('\n');
}

const LANGCHAIN_ROLES = { system: 'system', user: 'human', assistant: 'ai' };

export function langchainSnippet(body, baseUrl) {
  const args = [
    `    model=${python(body.model)},`,
    `    base_url=${python(baseUrl)},`,
    '    api_key=os.environ["GATEWAY_KEY"],',
  ];
  if (body.reasoning_effort) args.push(`    reasoning_effort=${python(body.reasoning_effort)},`);
  if (body.stream) args.push('    stream_usage=True,');
  if (body.guardrailConfig) {
    args.push(`    extra_body={"guardrailConfig": ${python(body.guardrailConfig, '    ')}},`);
  }
  const messages = body.messages.map(
    (m) => `    (${python(LANGCHAIN_ROLES[m.role] ?? m.role)}, ${python(m.content)}),`,
  );
  const lines = [
    'import os',
    '',
    'from langchain_openai import ChatOpenAI',
    '',
    'llm = ChatOpenAI(',
    ...args,
    ')',
    'messages = [',
    ...messages,
    ']',
  ];
  if (body.stream) {
    lines.push(
      'for chunk in llm.stream(messages):',
      '    print(chunk.content, end="", flush=True)',
      '    if chunk.response_metadata.get("finish_reason"):',
      '        print("\\nfinish_reason:", chunk.response_metadata["finish_reason"])',
    );
  } else {
    lines.push(
      'message = llm.invoke(messages)',
      'print(message.response_metadata["finish_reason"])',
      'print(message.content)',
    );
  }
  return lines.join('\n');
}

export const SNIPPETS = [
  { id: 'curl', title: 'curl', make: curlSnippet },
  { id: 'python', title: 'Python (openai SDK)', make: openaiSnippet },
  { id: 'langchain', title: 'LangChain (ChatOpenAI)', make: langchainSnippet },
];
