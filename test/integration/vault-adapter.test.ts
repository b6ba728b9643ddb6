import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { blackHoleServer } from '../support/black-hole';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createVaultSource } from '../../adapters/vault';
import { systemClock } from '../../src/clock';
import type { CredentialRequest, CredentialSource } from '../../src/credentials/credential-source';
import { BrokerError } from '../../src/errors';
import { createLogger } from '../../src/observability/logger';
import type { CredentialSpec } from '../../src/policy/schema';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { approleToken, baoApi, bootstrapBao, lookupLease, type BaoFixture } from './support/bao-bootstrap';
import { observeLatency } from './support/latency';
import { tryPostgresLogin } from './support/postgres-login';

/**
 * The Vault adapter against a real OpenBao: per-tenant AppRoles whose policies Vault enforces, KV v2
 * reads, leased PostgreSQL credentials that really log in and really stop working once revoked.
 */
const TENANTS = ['acme', 'globex'] as const;

function request(tenant: string, spec: CredentialSpec, signal = new AbortController().signal): CredentialRequest {
  return { tenant, name: 'crm', spec, session: 'sess-1', callId: `call-${randomBytes(4).toString('hex')}`, signal };
}
const kv = (path: string, field?: string): CredentialSpec => ({ source: 'vault', path, ...(field ? { field } : {}) }) as CredentialSpec;
const db = (role: string): CredentialSpec => ({ source: 'vault-database', role, mount: 'database' }) as CredentialSpec;

async function rejectionOf(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (err) {
    return err as BrokerError;
  }
  throw new Error('expected the call to be refused');
}

describeWithUpstream(['bao', 'postgres'], 'Vault adapter against OpenBao', () => {
  const env = upstreamEnv();
  let dir: string;
  let bao: BaoFixture;
  let source: CredentialSource;
  const sourceFor = (tenants: Record<string, { roleIdFile: string; secretIdFile: string }>, extra: Partial<Parameters<typeof createVaultSource>[0]> = {}) =>
    createVaultSource({ address: env.VAULT_ADDR, timeoutMs: 3000, tenants, clock: systemClock, ...extra });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-vault-'));
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: TENANTS, dir, databaseUrl: env.DATABASE_URL });
    source = sourceFor(Object.fromEntries(TENANTS.map((t) => [t, bao.tenants[t]!])));
  });
  afterAll(async () => {
    await source?.close?.();
    await rm(dir, { recursive: true, force: true });
  });

  test("resolves the tenant's own KV v2 secret, whole or one field, with the version in the ref", async () => {
    const acme = bao.tenants.acme!;
    const field = await source.resolve(request('acme', kv(acme.kvPath, 'api_key')));
    expect(field).toMatchObject({ source: 'vault', value: acme.kvSecret.api_key });
    expect(field.ref).toMatch(new RegExp(`^${acme.kvPath}#api_key@v\\d+$`));
    const whole = await source.resolve(request('acme', kv(acme.kvPath)));
    expect(JSON.parse(whole.value)).toEqual(acme.kvSecret);
  });

  test("Vault itself refuses tenant A's AppRole token on tenant B's path (403)", async () => {
    const token = await approleToken(env.VAULT_ADDR, bao.tenants.acme!, (p) => readFile(p, 'utf8'));
    const own = await fetch(`${env.VAULT_ADDR}/v1/${bao.tenants.acme!.kvPath}`, { headers: { 'X-Vault-Token': token } });
    expect(own.status).toBe(200);
    const foreign = await fetch(`${env.VAULT_ADDR}/v1/${bao.tenants.globex!.kvPath}`, { headers: { 'X-Vault-Token': token } });
    expect(foreign.status).toBe(403);
  });

  test("a credential that points tenant A at tenant B's path (a broker or policy bug) is refused by Vault, and the client learns nothing of why", async () => {
    const err = await rejectionOf(source.resolve(request('acme', kv(bao.tenants.globex!.kvPath, 'api_key'))));
    expect(err).toBeInstanceOf(BrokerError);
    expect(err.reason).toBe('upstream_unavailable');
    expect((err.cause as { statusCode?: number }).statusCode).toBe(403);
    // The public message names the credential only: no path, no tenant, no Vault wording.
    expect(err.message).toBe('credential "crm" is not available from Vault');
  });

  test('a tenant with no AppRole of its own gets nothing from Vault (no shared fallback identity)', async () => {
    const err = await rejectionOf(source.resolve(request('initech', kv(bao.tenants.acme!.kvPath))));
    expect(err.reason).toBe('upstream_unavailable');
  });

  test('why per-tenant AppRoles: a shared broker identity (token file) serves tenants without one, and then Vault cannot stop a cross-tenant read', async () => {
    const root = baoApi(env.VAULT_ADDR, env.VAULT_TOKEN);
    const policy = `bh-${bao.runId}-shared`;
    await root('POST', `sys/policies/acl/${policy}`, { policy: 'path "secret/data/tenants/*" { capabilities = ["read"] }' });
    const created = await root('POST', 'auth/token/create', { policies: [policy], ttl: '10m' });
    const tokenFile = join(dir, 'shared.token');
    await writeFile(tokenFile, `${created.body.auth.client_token}\n`, { mode: 0o600 });
    const withShared = sourceFor({ acme: bao.tenants.acme! }, { shared: { tokenFile } });
    try {
      // initech has no AppRole: it reads with the shared token, which can read every tenant's path...
      const foreign = await withShared.resolve(request('initech', kv(bao.tenants.globex!.kvPath, 'api_key')));
      expect(foreign.value).toBe(bao.tenants.globex!.kvSecret.api_key);
      // ...while acme, with its own AppRole, is still refused by Vault on the same path.
      const refused = await rejectionOf(withShared.resolve(request('acme', kv(bao.tenants.globex!.kvPath, 'api_key'))));
      expect((refused.cause as { statusCode?: number }).statusCode).toBe(403);
    } finally {
      await withShared.close?.();
    }
  });

  test('a leased database credential logs in to PostgreSQL; once its lease is revoked, the lease is gone and the login is refused', async () => {
    const acme = bao.tenants.acme!;
    const cred = await source.resolve(request('acme', db(acme.dbRole)));
    expect(cred.source).toBe('vault-database');
    expect(cred.lease_id).toMatch(new RegExp(`^database/creds/${acme.dbRole}/`));
    expect(Date.parse(cred.expires_at!)).toBeGreaterThan(Date.now());
    const login = JSON.parse(cred.value) as { username: string; password: string };
    expect(await tryPostgresLogin(env.DATABASE_URL, login)).toEqual({ ok: true, user: login.username });
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, cred.lease_id!)).status).toBe(200);

    await source.revokeLease!('acme', cred.lease_id!);

    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, cred.lease_id!)).status).toBe(400);
    const after = await tryPostgresLogin(env.DATABASE_URL, login);
    expect(after.ok).toBe(false);
  });

  test("tenant A can neither mint tenant B's database credential nor revoke tenant B's lease", async () => {
    const minted = await rejectionOf(source.resolve(request('acme', db(bao.tenants.globex!.dbRole))));
    expect((minted.cause as { statusCode?: number }).statusCode).toBe(403);

    const globexCred = await source.resolve(request('globex', db(bao.tenants.globex!.dbRole)));
    await expect(source.revokeLease!('acme', globexCred.lease_id!)).rejects.toMatchObject({ statusCode: 403 });
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, globexCred.lease_id!)).status).toBe(200);
    await source.revokeLease!('globex', globexCred.lease_id!);
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, globexCred.lease_id!)).status).toBe(400);
  });

  test('concurrent first calls for a tenant share one AppRole login', async () => {
    const lines: string[] = [];
    const sink = new PassThrough();
    sink.on('data', (chunk: Buffer) => lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
    const fresh = sourceFor({ acme: bao.tenants.acme! }, { logger: createLogger({ destination: sink, level: 'info' }) });
    try {
      const acme = bao.tenants.acme!;
      const values = await Promise.all(Array.from({ length: 10 }, () => fresh.resolve(request('acme', kv(acme.kvPath, 'api_key')))));
      expect(new Set(values.map((v) => v.value))).toEqual(new Set([acme.kvSecret.api_key]));
      await new Promise((r) => setImmediate(r));
      expect(lines.filter((l) => l.includes('logged in with the tenant AppRole'))).toHaveLength(1);
      // The log line names the tenant and TTL, never the role_id, secret_id or token.
      const ids = [await readFile(acme.roleIdFile, 'utf8'), await readFile(acme.secretIdFile, 'utf8')].map((x) => x.trim());
      for (const line of lines) for (const id of ids) expect(line.includes(id)).toBe(false);
    } finally {
      await fresh.close?.();
    }
  });

  test('revokeLease ignores ids that are not Vault dynamic-secret leases (and never builds a path out of "..")', async () => {
    await expect(source.revokeLease!('acme', '../../auth/token/revoke-self')).resolves.toBeUndefined();
    await expect(source.revokeLease!('acme', 'local-lease-1')).resolves.toBeUndefined();
  });

  test("renews the tenant's token, so a lease issued under it outlives the token's first TTL", async () => {
    // Vault revokes a token's leases when the token expires: without renewal this lease would die at 3s.
    const short = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme'], dir: join(dir, 'short'), databaseUrl: env.DATABASE_URL, tokenTtl: '3s', tokenMaxTtl: '5m' });
    const renewing = sourceFor({ acme: short.tenants.acme! });
    try {
      const cred = await renewing.resolve(request('acme', db(short.tenants.acme!.dbRole)));
      await new Promise((r) => setTimeout(r, 5000));
      expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, cred.lease_id!)).status).toBe(200);
      expect((await tryPostgresLogin(env.DATABASE_URL, JSON.parse(cred.value))).ok).toBe(true);
      const again = await renewing.resolve(request('acme', kv(short.tenants.acme!.kvPath, 'api_key')));
      expect(again.value).toBe(short.tenants.acme!.kvSecret.api_key);
      await renewing.revokeLease!('acme', cred.lease_id!);
    } finally {
      await renewing.close?.();
    }
  }, 30_000);

  describe('an upstream that is slow or gone', () => {
    const blackHole = blackHoleServer();

    test("a Vault that never answers gives upstream_unavailable at the adapter's own client timeout", async () => {
      const hung = sourceFor({ acme: bao.tenants.acme! }, { address: blackHole.url, timeoutMs: 300 });
      const err = await rejectionOf(hung.resolve(request('acme', kv(bao.tenants.acme!.kvPath))));
      expect(err.reason).toBe('upstream_unavailable');
      expect((err.cause as { code?: string }).code).toBe('TimeoutError');
      await hung.close?.();
    });

    test("the caller's abort signal ends the request at once", async () => {
      const hung = sourceFor({ acme: bao.tenants.acme! }, { address: blackHole.url, timeoutMs: 60_000 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(new DOMException('call budget spent', 'TimeoutError')), 100);
      const err = await rejectionOf(hung.resolve(request('acme', kv(bao.tenants.acme!.kvPath), controller.signal)));
      expect(err.reason).toBe('upstream_unavailable');
      await hung.close?.();
    });

    test('nothing listening gives upstream_unavailable, and readiness says so', async () => {
      const gone = sourceFor({ acme: bao.tenants.acme! }, { address: 'http://127.0.0.1:9' });
      const err = await rejectionOf(gone.resolve(request('acme', kv(bao.tenants.acme!.kvPath))));
      expect(err.reason).toBe('upstream_unavailable');
      expect(await gone.ready!()).toBe(false);
      expect(await source.ready!()).toBe(true);
      await gone.close?.();
    });
  });

  test('observed resolve latency (printed, not asserted)', async () => {
    const acme = bao.tenants.acme!;
    await observeLatency('vault kv (warm token)', 30, () => source.resolve(request('acme', kv(acme.kvPath, 'api_key'))));
    const leases: string[] = [];
    await observeLatency('vault-database creds (new PG role per call)', 10, async () => {
      leases.push((await source.resolve(request('acme', db(acme.dbRole)))).lease_id!);
    });
    await observeLatency('vault lease revoke', 10, async () => source.revokeLease!('acme', leases.pop()!));
    for (const lease of leases) await source.revokeLease!('acme', lease);
  }, 60_000);
});
