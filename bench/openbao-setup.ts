import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Prepares the real OpenBao (from scripts/upstreams.sh) for the benchmark the way docs/upstreams.md
 * has an operator do it, with the root token: per tenant a policy that can read only that tenant's
 * KV v2 path, an AppRole bound to it (role_id / secret_id in 0600 files, as the broker reads them) and
 * one KV v2 secret. Names carry a per-run id so a bench never collides with tests running against the
 * same OpenBao.
 */
export interface BaoTenant {
  roleIdFile: string;
  secretIdFile: string;
  /** API path of the secret, as policy names it (`secret/data/…`). */
  kvPath: string;
}

export interface BaoSetup {
  address: string;
  tenants: Record<string, BaoTenant>;
  /** A token for the direct-read baseline: an AppRole login of the first tenant, same policy as the broker's. */
  directToken: string;
  directPath: string;
}

export function baoFromEnv(env: NodeJS.ProcessEnv = process.env): { address: string; rootToken: string } | null {
  return env.VAULT_ADDR && env.VAULT_TOKEN ? { address: env.VAULT_ADDR.replace(/\/+$/, ''), rootToken: env.VAULT_TOKEN } : null;
}

async function call(address: string, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${address}/v1/${path}`, {
    method,
    headers: { 'X-Vault-Token': token, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  const parsed: any = text ? JSON.parse(text) : undefined;
  const alreadyThere = response.status === 400 && text.includes('already in use');
  if (response.status >= 300 && !alreadyThere) throw new Error(`OpenBao ${method} ${path}: HTTP ${response.status}`);
  return parsed;
}

export async function setUpOpenBao(options: { address: string; rootToken: string; tenants: string[]; dir: string }): Promise<BaoSetup> {
  const { address, rootToken, dir } = options;
  const root = (method: string, path: string, body?: unknown) => call(address, rootToken, method, path, body);
  const runId = randomBytes(4).toString('hex');
  await root('POST', 'sys/auth/approle', { type: 'approle' });
  const mounts = await root('GET', 'sys/mounts');
  if (!mounts?.data?.['secret/'] && !mounts?.['secret/']) await root('POST', 'sys/mounts/secret', { type: 'kv', options: { version: '2' } });

  const tenants: Record<string, BaoTenant> = {};
  for (const tenant of options.tenants) {
    const name = `bh-bench-${runId}-${tenant}`;
    const kvPath = `secret/data/bench/${runId}/${tenant}/crm`;
    await root('POST', `sys/policies/acl/${name}`, { policy: `path "secret/data/bench/${runId}/${tenant}/*" { capabilities = ["read"] }\n` });
    await root('POST', `auth/approle/role/${name}`, { token_policies: [name], token_ttl: '30m', token_max_ttl: '2h', secret_id_ttl: '2h' });
    const roleId = (await root('GET', `auth/approle/role/${name}/role-id`)).data.role_id as string;
    const secretId = (await root('POST', `auth/approle/role/${name}/secret-id`, {})).data.secret_id as string;
    const roleIdFile = join(dir, `${tenant}.role_id`);
    const secretIdFile = join(dir, `${tenant}.secret_id`);
    await writeFile(roleIdFile, `${roleId}\n`, { mode: 0o600 });
    await writeFile(secretIdFile, `${secretId}\n`, { mode: 0o600 });
    await root('POST', kvPath, { data: { api_key: `${tenant}-bench-${randomBytes(16).toString('hex')}` } });
    tenants[tenant] = { roleIdFile, secretIdFile, kvPath };
  }

  const first = options.tenants[0]!;
  const login = await call(address, '', 'POST', 'auth/approle/login', {
    role_id: (await root('GET', `auth/approle/role/bh-bench-${runId}-${first}/role-id`)).data.role_id,
    secret_id: (await root('POST', `auth/approle/role/bh-bench-${runId}-${first}/secret-id`, {})).data.secret_id,
  });
  return { address, tenants, directToken: login.auth.client_token as string, directPath: `/v1/${tenants[first]!.kvPath}` };
}
