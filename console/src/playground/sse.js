// Server-sent events from a fetch body, as they arrive: each event's `data:` lines joined.
// (EventSource cannot POST or send an authorization header, so the playground reads the
// stream itself.)

/** Yields each event's data as soon as its blank line has arrived; stops at `[DONE]`. */
export async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = eventEnd(buffer)) !== null) {
        const data = dataOf(buffer.slice(0, end.at));
        buffer = buffer.slice(end.at + end.length);
        if (data === null) continue;
        if (data === '[DONE]') return;
        yield data;
      }
    }
    const data = dataOf(buffer);
    if (data !== null && data !== '[DONE]') yield data;
  } finally {
    reader.releaseLock();
  }
}

function eventEnd(buffer) {
  const match = /\r?\n\r?\n/.exec(buffer);
  return match ? { at: match.index, length: match[0].length } : null;
}

function dataOf(event) {
  const lines = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).replace(/^ /, ''));
  return lines.length ? lines.join('\n') : null;
}
