import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Sets up OpenBao (or Vault) the way docs/upstreams.md tells an operator to, using the root token:
 *
 *  - per tenant, a policy that allows reading only `secret/data/tenants/<t>/*`, minting credentials
 *    from its own database role, and revoking only that role's leases (URL form of sys/leases/revoke);
 *  - per tenant, an AppRole bound to that policy, with role_id and secret_id written to files (0600);
 *  - the database secrets engine connected to the upstream PostgreSQL, with one role per tenant whose
 *    creation statement makes a short-lived LOGIN role;
 *  - KV v2 secrets for each tenant under `secret/data/tenants/<t>/<run>/crm`.
 *
 * Every name carries a per-run id, so test files running in parallel against one OpenBao never share
 * a role, a policy or a secret; re-running it (after OpenBao restarted and lost everything in dev mode)
 * recreates the same names and rewrites the same files.
 */
export interface BaoTenantFixture {
  tenant: string;
  policy: string;
  approleRole: string;
  roleIdFile: string;
  secretIdFile: string;
  dbRole: string;
  kvPath: string;
  kvSecret: { api_key: string; password: string };
}

export interface BaoFixture {
  address: string;
  runId: string;
  dir: string;
  tenants: Record<string, BaoTenantFixture>;
}

export interface BaoBootstrapOptions {
  address: string;
  rootToken: string;
  tenants: readonly string[];
  /** Where role_id / secret_id files go. */
  dir: string;
  /** Reuse to re-bootstrap after a restart with the same names and files. */
  runId?: string;
  /** Connect the database secrets engine to this PostgreSQL (omit to skip the database engine). */
  databaseUrl?: string;
  tokenTtl?: string;
  tokenMaxTtl?: string;
  dbTtl?: string;
  /** Reuse KV values (re-bootstrap); default random per tenant. */
  kvSecrets?: Record<string, BaoTenantFixture['kvSecret']>;
}

export const dbConnection = (runId: string) => `bh-${runId}-pg`;

export function baoApi(address: string, token: string) {
  return async function call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const response = await fetch(`${address}/v1/${path}`, {
      method,
      headers: { 'X-Vault-Token': token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
}

export async function bootstrapBao(options: BaoBootstrapOptions): Promise<BaoFixture> {
  const api = baoApi(options.address, options.rootToken);
  const must = async (method: string, path: string, body?: unknown, ok: (s: number, b: any) => boolean = (s) => s < 300) => {
    const res = await api(method, path, body);
    if (!ok(res.status, res.body)) throw new Error(`bootstrap ${method} ${path}: HTTP ${res.status} ${JSON.stringify(res.body?.errors ?? '')}`);
    return res.body;
  };
  const inUse = (s: number, b: any) => s < 300 || (s === 400 && JSON.stringify(b).includes('already in use'));
  const runId = options.runId ?? randomBytes(4).toString('hex');
  await mkdir(options.dir, { recursive: true, mode: 0o700 });

  await must('POST', 'sys/auth/approle', { type: 'approle' }, inUse);
  const mounts = await must('GET', 'sys/mounts');
  if (!mounts?.data?.['secret/']) await must('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } }, inUse);
  if (options.databaseUrl) {
    await must('POST', 'sys/mounts/database', { type: 'database' }, inUse);
    // A connection per run: rewriting a shared one would reset it under another file's calls.
    const db = new URL(options.databaseUrl);
    await must('POST', `database/config/${dbConnection(runId)}`, {
      plugin_name: 'postgresql-database-plugin',
      connection_url: `postgresql://{{username}}:{{password}}@${db.host}${db.pathname}?sslmode=disable`,
      username: decodeURIComponent(db.username),
      password: decodeURIComponent(db.password),
      allowed_roles: `bh-${runId}-*`,
    });
  }

  const tenants: Record<string, BaoTenantFixture> = {};
  for (const tenant of options.tenants) {
    const name = `bh-${runId}-${tenant}`;
    const dbLine = options.databaseUrl
      ? `path "database/creds/${name}" { capabilities = ["read"] }\npath "sys/leases/revoke/database/creds/${name}/*" { capabilities = ["update"] }\n`
      : '';
    await must('POST', `sys/policies/acl/${name}`, { policy: `path "secret/data/tenants/${tenant}/*" { capabilities = ["read"] }\n${dbLine}` });
    await must('POST', `auth/approle/role/${name}`, {
      token_policies: [name],
      token_ttl: options.tokenTtl ?? '15m',
      token_max_ttl: options.tokenMaxTtl ?? '1h',
      secret_id_ttl: '24h',
    });
    const roleId = (await must('GET', `auth/approle/role/${name}/role-id`)).data.role_id as string;
    const secretId = (await must('POST', `auth/approle/role/${name}/secret-id`, {})).data.secret_id as string;
    const roleIdFile = join(options.dir, `${tenant}.role_id`);
    const secretIdFile = join(options.dir, `${tenant}.secret_id`);
    await writeFile(roleIdFile, `${roleId}\n`, { mode: 0o600 });
    await writeFile(secretIdFile, `${secretId}\n`, { mode: 0o600 });

    if (options.databaseUrl) {
      await must('POST', `database/roles/${name}`, {
        db_name: dbConnection(runId),
        creation_statements: [`CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`],
        default_ttl: options.dbTtl ?? '5m',
        max_ttl: '1h',
      });
    }

    const kvSecret = options.kvSecrets?.[tenant] ?? { api_key: `${tenant}-vault-key-${randomBytes(12).toString('hex')}`, password: `${tenant}-vault-pw-${randomBytes(12).toString('hex')}` };
    const kvPath = `secret/data/tenants/${tenant}/${runId}/crm`;
    await must('POST', kvPath, { data: kvSecret });
    tenants[tenant] = { tenant, policy: name, approleRole: name, roleIdFile, secretIdFile, dbRole: name, kvPath, kvSecret };
  }
  return { address: options.address, runId, dir: options.dir, tenants };
}

/** Root-token lease lookup: `{status: 200, ttl}` while the lease lives, 400 "invalid lease" after. */
export async function lookupLease(address: string, rootToken: string, leaseId: string): Promise<{ status: number; ttl?: number }> {
  const res = await baoApi(address, rootToken)('PUT', 'sys/leases/lookup', { lease_id: leaseId });
  return { status: res.status, ttl: res.body?.data?.ttl };
}

/** Logs in with a tenant's AppRole files, exactly as the broker does, and returns the token. */
export async function approleToken(address: string, fixture: BaoTenantFixture, readFile: (p: string) => Promise<string>): Promise<string> {
  const res = await fetch(`${address}/v1/auth/approle/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ role_id: (await readFile(fixture.roleIdFile)).trim(), secret_id: (await readFile(fixture.secretIdFile)).trim() }),
  });
  const body = (await res.json()) as { auth: { client_token: string } };
  if (res.status !== 200) throw new Error(`approle login failed: HTTP ${res.status}`);
  return body.auth.client_token;
}
