import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { withDeadline } from '../deadline';
import { brokerAddress } from '../net/broker-address';
import { DEMO_FILE, type DemoCredentials } from '../policy/demo';
import { brokerUrl } from './options';
import { UsageError } from './usage-error';

/** CLI verbs that act on a running broker go through its HTTP API, so a running process sees them at once. */
export async function callBroker(url: string | undefined, path: string, init: { method: string; body?: unknown; bearer?: string; form?: URLSearchParams; timeoutMs?: number }): Promise<unknown> {
  const base = brokerUrl(url);
  const headers: Record<string, string> = {};
  if (init.bearer) headers.authorization = `Bearer ${init.bearer}`;
  let body: string | undefined;
  if (init.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = init.form.toString();
  } else if (init.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(init.body);
  }
  let response: { status: number; ok: boolean };
  let text: string;
  try {
    ({ response, text } = await withDeadline(init.timeoutMs ?? 10_000, 'broker request', undefined, async (signal) => {
      // A unix:/path (or http+unix://) URL reaches a broker's socket (serve --listen unix:/path).
      const { base: target, socketPath } = brokerAddress(base);
      if (socketPath === undefined) {
        const answer = await fetch(new URL(path, target), { method: init.method, headers, body, signal });
        return { response: answer, text: await answer.text() };
      }
      const dispatcher = new Agent({ connect: { socketPath } });
      try {
        const answer = await undiciFetch(new URL(path, target), { method: init.method, headers, body, signal, dispatcher });
        return { response: answer, text: await answer.text() };
      } finally {
        await dispatcher.close();
      }
    }));
  } catch (err) {
    throw new Error(`cannot reach the broker at ${base} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`the broker at ${base} answered ${response.status} with a non-JSON body`);
  }
  if (!response.ok) {
    const e = json as { error?: string; reason?: string; message?: string; error_description?: string };
    throw new Error(`${response.status} ${e.reason ?? e.error ?? 'error'}: ${e.message ?? e.error_description ?? ''}`.trim());
  }
  return json;
}

/** Reads a secret from --*-file, an environment variable, or the demo credentials in --data-dir. */
export function readSecret(options: { file?: string; envName: string; demo?: (d: DemoCredentials) => string | undefined; dataDir: string; what: string }): string {
  if (options.file) {
    try {
      return readFileSync(options.file, 'utf8').trim();
    } catch {
      throw new UsageError(`${options.file}: cannot read ${options.what}`);
    }
  }
  const fromEnv = process.env[options.envName];
  if (fromEnv) return fromEnv;
  try {
    const demo = JSON.parse(readFileSync(join(options.dataDir, DEMO_FILE), 'utf8')) as DemoCredentials;
    const value = options.demo?.(demo);
    if (value) return value;
  } catch {
    // No demo file: fall through to the usage error.
  }
  throw new UsageError(`no ${options.what}: pass it in a file or set ${options.envName}`);
}
