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
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const method = options.method ?? 'GET';
  const bodies = options.bodies ?? [undefined];
  const requests: AutocannonRequest[] = bodies.map((body) => ({ method, path: options.path, headers: options.headers ?? {}, ...(body === undefined ? {} : { body }) }));
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const started = process.hrtime.bigint();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const instance = autocannon({ url: options.url, connections: options.connections, duration: options.durationSec, requests }, (err, res) => (err ? reject(err) : resolve(res)));
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
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
  return {
    rps: round(count / elapsedSec, 0),
    p50Ms: round(percentile(samples, 50), 3),
    p99Ms: round(percentile(samples, 99), 3),
    ok: count,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count])),
    connections: options.connections,
    durationSec: options.durationSec,
  };
}
