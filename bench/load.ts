import { percentile, round } from './stats';

/**
 * One load run with autocannon (a fixed number of keep-alive connections, closed loop), in this
 * process, against a server in another process. Latencies are recorded here as floats from each
 * response, because autocannon's own histogram truncates them to whole milliseconds, which is too
 * coarse for sub-millisecond endpoints.
 */

// autocannon ships no type declarations; this is the part of its API we use.
interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest;
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): void;
}
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodeStats: Record<string, { count: number }>;
}
type Autocannon = (
  options: { url: string; connections: number; duration: number; pipelining?: number; requests?: AutocannonRequest[]; method?: string; headers?: Record<string, string>; body?: string },
  done: (err: Error | null, result: AutocannonResult) => void,
) => AutocannonInstance;
const autocannon: Autocannon = require('autocannon');

export interface LoadOptions {
  /** Base URL of the server (http://127.0.0.1:PORT). */
  url: string;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  /** One body, or several that each connection cycles through. */
  bodies?: string[];
  connections: number;
  durationSec: number;
  /**
   * A second request each connection sends after every answer to the first one, as an MCP server calls
   * /v1/complete after each allowed tool call: `body` builds it from the first answer's body. Only the
   * first request's answers count in rps and latency; the follow-ups are counted on their own.
   */
  followUp?: { path: string; body(firstAnswer: string): string };
}

export interface LoadResult {
  /** 2xx responses per second. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  non2xx: number;
  errors: number;
  statusCodes: Record<string, number>;
  connections: number;
  durationSec: number;
  /** CPU time the server process spent per 2xx answer (µs), when the step could measure it. */
  serverCpuUs?: number;
  /** CPU time the load generator (the clients, in the bench's own process) spent per 2xx answer (µs), when measured. */
  loadCpuUs?: number;
  /** With `followUp`: its 2xx and other answers (errors included). */
  followUps?: { ok: number; failed: number };
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const method = options.method ?? 'GET';
  const bodies = options.bodies ?? [undefined];
  const headers = options.headers ?? {};
  // Which of the two requests the answer being counted belongs to: onResponse runs just before autocannon's 'response' event.
  let answering: 'first' | 'followUp' = 'first';
  const followUps = { ok: 0, failed: 0 };
  const followUp = options.followUp;
  const requests: AutocannonRequest[] = bodies.flatMap((body): AutocannonRequest[] => {
    const first: AutocannonRequest = { method, path: options.path, headers, ...(body === undefined ? {} : { body }) };
    if (!followUp) return [first];
    first.onResponse = (_status, answer, context) => {
      answering = 'first';
      context.answer = answer;
    };
    const second: AutocannonRequest = {
      method: 'POST',
      path: followUp.path,
      headers,
      setupRequest: (request, context) => ({ ...request, body: followUp.body(String(context.answer ?? '')) }),
      onResponse: (status) => {
        answering = 'followUp';
        if (status >= 200 && status < 300) followUps.ok++;
        else followUps.failed++;
      },
    };
    return [first, second];
  });
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const started = process.hrtime.bigint();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon({ url: options.url, connections: options.connections, duration: options.durationSec, requests }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (answering === 'followUp') return;
      if (statusCode < 200 || statusCode >= 300) return;
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = responseTime;
    });
  });
  const elapsedSec = Number(process.hrtime.bigint() - started) / 1e9;
  const samples = latencies.subarray(0, count);
  // autocannon counts every answer; the follow-ups' own failures are reported apart from the first request's.
  const non2xx = result.non2xx - (followUp ? followUps.failed : 0);
  return {
    rps: round(count / elapsedSec, 0),
    p50Ms: round(percentile(samples, 50), 3),
    p99Ms: round(percentile(samples, 99), 3),
    ok: count,
    non2xx,
    errors: result.errors + result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
    connections: options.connections,
    durationSec: options.durationSec,
    ...(followUp ? { followUps } : {}),
  };
}
