/**
 * `--json` for every verb, without each verb knowing: while a verb runs with --json, what it writes to
 * stdout is collected, and one JSON document is written when it returns. A verb that printed JSON
 * (most operator verbs do, and `audit verify --json`, `policy check --json` choose to) is passed through;
 * a verb that printed text is wrapped as `{"output": [lines]}`; a help text as `{"verb", "help"}`; a
 * failure as `{"error": {"message", "exit_code"}}` (the one-line message still goes to stderr).
 * Streaming verbs (serve: pino JSON lines) are not collected.
 */
export interface JsonRun {
  /** Stops collecting and returns what the verb wrote. */
  finish(): string;
}

export function collectStdout(): JsonRun {
  const chunks: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, encodingOrCallback?: unknown, callback?: unknown) => {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof process.stdout.write;
  return {
    finish() {
      process.stdout.write = original;
      return chunks.join('');
    },
  };
}

/** What a verb wrote, as exactly one JSON document. */
export function asJsonDocument(text: string, context: { verb: string; help: boolean }): unknown {
  const trimmed = text.trim();
  if (context.help) return { verb: context.verb, help: trimmed };
  if (trimmed === '') return { ok: true };
  try {
    return JSON.parse(trimmed);
  } catch {
    return { output: trimmed.split('\n') };
  }
}

export function writeJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** A verb's result: the value as JSON under --json, else the text a person reads. */
export function report(json: boolean | undefined, value: unknown, text: string): void {
  if (json) writeJson(value);
  else process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}
