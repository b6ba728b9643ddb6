import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../src/crypto/hash';

/**
 * Bench policies of any size: N tenants, each with one agent principal allowed every one of its M
 * tools, all on one MCP server. The first tool is a realistic one (a resource prefix and an injected
 * field, so authorize does its full argument work); the rest are plain. Secrets are random per run.
 * Only the tenants a scenario calls get a known client secret; the others get a digest of a random
 * value nobody keeps, which costs the policy the same bytes.
 */
export const BENCH_SERVER = 'bench-mcp';
export const BENCH_TOOL = 'query_crm';

export interface FixtureOptions {
  tenants: number;
  toolsPerTenant: number;
  /** How many tenants (from the first) get a client secret the scenario may use. */
  activeTenants: number;
  /** Local store, or OpenBao KV v2 with one AppRole per active tenant (see openbao-setup.ts). */
  credential: { source: 'local' } | { source: 'vault'; address: string; tenants: Record<string, { roleIdFile: string; secretIdFile: string; kvPath: string }> };
  quotas: { calls_per_minute: number; concurrency: number };
}

export interface Fixture {
  raw: Record<string, unknown>;
  serverKey: string;
  operatorToken: string;
  /** client id (`tenant/agent`) → secret, for the active tenants only. */
  clients: Array<{ tenant: string; clientId: string; secret: string }>;
}

const random = () => randomBytes(24).toString('base64url');

export function tenantId(i: number): string {
  return `t${String(i).padStart(5, '0')}`;
}

export function toolNames(count: number): string[] {
  return [BENCH_TOOL, ...Array.from({ length: count - 1 }, (_, i) => `tool${String(i + 1).padStart(3, '0')}`)];
}

export function buildFixture(options: FixtureOptions): Fixture {
  const serverKey = random();
  const operatorToken = random();
  const tools = toolNames(options.toolsPerTenant);
  const clients: Fixture['clients'] = [];
  const tenants: Record<string, unknown> = {};
  for (let i = 0; i < options.tenants; i++) {
    const tenant = tenantId(i);
    let digest: string;
    if (i < options.activeTenants) {
      const secret = random();
      clients.push({ tenant, clientId: `${tenant}/agent`, secret });
      digest = sha256Hex(secret);
    } else {
      digest = sha256Hex(randomBytes(16));
    }
    const toolPolicies: Record<string, unknown> = {};
    for (const name of tools) toolPolicies[name] = name === BENCH_TOOL ? { credential: 'crm', resource: { arg: 'path', prefix: `${tenant}/` }, inject: { region: 'eu-west-1' } } : { credential: 'crm' };
    const credential = options.credential;
    const bao = credential.source === 'vault' ? credential.tenants[tenant] : undefined;
    tenants[tenant] = {
      principals: { agent: { secret_sha256: digest, tools } },
      tools: toolPolicies,
      // Tenants a vault scenario never calls keep a local credential: policy wants an AppRole for every vault one.
      credentials: { crm: bao ? { source: 'vault', path: bao.kvPath, field: 'api_key' } : { source: 'local', name: 'crm' } },
      ...(bao ? { vault: { approle: { role_id_file: bao.roleIdFile, secret_id_file: bao.secretIdFile } } } : {}),
      quotas: options.quotas,
    };
  }
  const raw = {
    broker: {
      issuer: 'http://bulkhead.bench',
      ...(options.credential.source === 'vault' ? { upstreams: { vault: { address: options.credential.address } } } : {}),
    },
    operators: { ops: { token_sha256: sha256Hex(operatorToken) } },
    servers: { [BENCH_SERVER]: { key_sha256: sha256Hex(serverKey), tools } },
    tenants,
  };
  return { raw, serverKey, operatorToken, clients };
}

/** The tool call every authorize scenario makes: in scope, under the tenant's prefix. */
export function authorizeBody(token: string, tenant: string): string {
  return JSON.stringify({ token, tool: BENCH_TOOL, arguments: { path: `${tenant}/accounts/42`, limit: 10 } });
}
