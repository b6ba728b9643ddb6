import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { sha256Hex } from '../../../src/crypto/hash';
import { parsePolicy, PolicyError } from '../../../src/policy/load';

/** A small valid policy as plain data; each test breaks one thing in a fresh copy. */
export function validPolicy(): any {
  return {
    broker: { issuer: 'http://127.0.0.1:8700', token_ttl: '15m', max_token_ttl: '60m', rotation: { signing_key: '24h', certificate: '24h' }, tls: { mode: 'off' } },
    operators: { ops: { token_sha256: sha256Hex('operator-token') } },
    servers: { 'crm-mcp': { key_sha256: sha256Hex('server-key'), tools: ['query_crm', 'export_report'] } },
    tenants: {
      acme: {
        principals: { 'acme-agent': { secret_sha256: sha256Hex('client-secret'), tools: ['query_crm', 'export_report'] } },
        tools: {
          query_crm: { credential: 'crm', resource: { arg: 'path', prefix: 'acme/' }, inject: { region: 'eu-west-1' }, approval: false },
          export_report: { credential: 'crm', max_records: 1000 },
        },
        credentials: { crm: { source: 'local', name: 'crm' } },
        quotas: { calls_per_minute: 600, concurrency: 8 },
      },
    },
  };
}

export interface TempDir {
  dir: string;
  /** Writes `policy` as YAML or JSON (by extension) or, for a string, verbatim; returns the path. */
  write(name: string, policy: unknown): Promise<string>;
  cleanup(): Promise<void>;
}

export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-policy-'));
  return {
    dir,
    async write(name, policy) {
      const path = join(dir, name);
      const text = typeof policy === 'string' ? policy : name.toLowerCase().endsWith('.json') ? JSON.stringify(policy, null, 2) : toYaml(policy);
      await writeFile(path, text);
      return path;
    },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

/** The message of the PolicyError `raw` is refused with (as file "policy.yaml"); fails if it is accepted. */
export function refusal(raw: unknown): string {
  try {
    parsePolicy(raw, 'policy.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as Error).message;
  }
  throw new Error('expected the policy to be refused');
}
