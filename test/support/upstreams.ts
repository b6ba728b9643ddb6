import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * The one place tests learn about the real upstreams (OpenBao, moto, PostgreSQL, Redis) that
 * `scripts/upstreams.sh up` starts. Addresses come from `scripts/upstreams.sh env` (never from the
 * developer's shell, where VAULT_ADDR/VAULT_TOKEN may point at a real Vault), and reachability is
 * probed directly, so services started by docker-compose count too.
 *
 * A suite that needs an upstream uses `describeWithUpstream([...], title, fn)`. When one is down:
 * with BULKHEAD_REQUIRE_UPSTREAMS=1 or CI=true the suite FAILS; otherwise it is skipped with a loud warning.
 */
export type UpstreamName = 'bao' | 'moto' | 'postgres' | 'redis';

export interface UpstreamEnv {
  VAULT_ADDR: string;
  VAULT_TOKEN: string;
  AWS_ENDPOINT_URL: string;
  AWS_ACCESS_KEY_ID: string;
  AWS_SECRET_ACCESS_KEY: string;
  AWS_REGION: string;
  DATABASE_URL: string;
  REDIS_URL: string;
  BULKHEAD_BAO_BIN: string;
  BULKHEAD_UPSTREAMS_DIR: string;
}

export const UPSTREAMS_SCRIPT = join(__dirname, '..', '..', 'scripts', 'upstreams.sh');
const KEYS: (keyof UpstreamEnv)[] = ['VAULT_ADDR', 'VAULT_TOKEN', 'AWS_ENDPOINT_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_REGION', 'DATABASE_URL', 'REDIS_URL', 'BULKHEAD_BAO_BIN', 'BULKHEAD_UPSTREAMS_DIR'];

let cachedEnv: UpstreamEnv | undefined;
let cachedProbe: Record<UpstreamName, boolean> | undefined;

/** Parses the `export K=V` lines the script prints (values are shell-quoted with printf %q). */
export function parseEnvLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^export ([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!;
    if (value.startsWith("'") && value.endsWith("'")) value = value.slice(1, -1);
    else value = value.replace(/\\(.)/g, '$1');
    out[m[1]!] = value;
  }
  return out;
}

export function upstreamEnv(): UpstreamEnv {
  if (cachedEnv) return cachedEnv;
  const text = execFileSync('bash', [UPSTREAMS_SCRIPT, 'env'], { encoding: 'utf8', timeout: 10_000 });
  const parsed = parseEnvLines(text);
  const missing = KEYS.filter((k) => !parsed[k]);
  if (missing.length) throw new Error(`scripts/upstreams.sh env did not print ${missing.join(', ')}`);
  cachedEnv = parsed as unknown as UpstreamEnv;
  return cachedEnv;
}

/**
 * Probes every upstream once per test file, synchronously (describe blocks are synchronous), in a
 * child node process: HTTP for OpenBao and moto, TCP connect for PostgreSQL and Redis.
 */
function probe(): Record<UpstreamName, boolean> {
  if (cachedProbe) return cachedProbe;
  const env = upstreamEnv();
  const script = `
    const net = require('node:net');
    const [vault, moto, pg, redis] = JSON.parse(process.argv[1]);
    const http = (url) => fetch(url, { signal: AbortSignal.timeout(2000) }).then((r) => r.status < 500, () => false);
    const tcp = (u) => new Promise((resolve) => {
      const { hostname, port } = new URL(u);
      const s = net.connect({ host: hostname, port: Number(port) }, () => { s.destroy(); resolve(true); });
      s.setTimeout(2000, () => { s.destroy(); resolve(false); });
      s.on('error', () => resolve(false));
    });
    Promise.all([http(vault + '/v1/sys/health'), http(moto + '/moto-api/'), tcp(pg), tcp(redis)])
      .then(([bao, moto, postgres, redis]) => process.stdout.write(JSON.stringify({ bao, moto, postgres, redis })));
  `;
  let result: Record<UpstreamName, boolean>;
  try {
    const out = execFileSync(process.execPath, ['-e', script, JSON.stringify([env.VAULT_ADDR, env.AWS_ENDPOINT_URL, env.DATABASE_URL, env.REDIS_URL])], { encoding: 'utf8', timeout: 15_000 });
    result = JSON.parse(out);
  } catch {
    result = { bao: false, moto: false, postgres: false, redis: false };
  }
  cachedProbe = result;
  return result;
}

export function upstreamUp(name: UpstreamName): boolean {
  return probe()[name];
}

export function requireUpstreamsFlag(): boolean {
  // CI sets CI=true: there a missing upstream is always a failure, whatever else is set.
  return process.env.BULKHEAD_REQUIRE_UPSTREAMS === '1' || process.env.CI === 'true';
}

/** The env, after checking the named upstreams answer; throws (with how to start them) if not. */
export function requireUpstream(...names: UpstreamName[]): UpstreamEnv {
  const down = names.filter((n) => !upstreamUp(n));
  if (down.length) throw new Error(`upstream ${down.join(', ')} not reachable: start it with \`bash scripts/upstreams.sh up\` (or docker compose up)`);
  return upstreamEnv();
}

/** `describe` when the upstreams answer; otherwise fail (CI) or skip loudly (local). */
export function describeWithUpstream(names: UpstreamName[], title: string, fn: () => void): void {
  const down = names.filter((n) => !upstreamUp(n));
  if (down.length === 0) {
    describe(title, fn);
    return;
  }
  const why = `upstream ${down.join(', ')} not reachable: start with \`bash scripts/upstreams.sh up\``;
  if (requireUpstreamsFlag()) {
    describe(title, () => {
      test(`needs ${names.join(', ')} (BULKHEAD_REQUIRE_UPSTREAMS=1)`, () => {
        throw new Error(why);
      });
    });
    return;
  }
  console.warn(`\n*** SKIPPING "${title}": ${why}. Set BULKHEAD_REQUIRE_UPSTREAMS=1 to make this a failure. ***\n`);
  describe.skip(title, fn);
}
