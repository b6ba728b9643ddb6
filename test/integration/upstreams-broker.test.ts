import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { startHarness, type Harness } from '../support/broker-harness';
import { callId } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { bootstrapBao, lookupLease, type BaoFixture } from './support/bao-bootstrap';
import { bootstrapMoto, type MotoFixture } from './support/moto-bootstrap';
import { tryPostgresLogin } from './support/postgres-login';
import { withUpstreams } from './support/upstream-policy';

/**
 * The whole path over HTTP: a real broker whose tenants read OpenBao (KV and leased PostgreSQL
 * logins) and moto, each with its own upstream identity; leases given back on /v1/complete and by
 * the kill switch, checked in Vault and in PostgreSQL; a mis-wired policy refused by Vault itself.
 */
describeWithUpstream(['bao', 'moto', 'postgres'], 'broker with Vault and AWS upstreams, over HTTP', () => {
  const env = upstreamEnv();
  let dir: string;
  let bao: BaoFixture;
  let moto: MotoFixture;
  let h: Harness;
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    // The broker reads AWS with the SDK's default credential chain, as in production.
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY, AWS_REGION: env.AWS_REGION });
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-upstreams-e2e-'));
    const tenants = ['acme', 'globex', 'initech'];
    [bao, moto] = await Promise.all([
      bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants, dir, databaseUrl: env.DATABASE_URL }),
      bootstrapMoto({ endpoint: env.AWS_ENDPOINT_URL, tenants }),
    ]);
    h = await startHarness({
      overrides: withUpstreams({ vaultAddr: env.VAULT_ADDR, awsEndpoint: env.AWS_ENDPOINT_URL, region: env.AWS_REGION, bao, moto, withDatabase: true, crossWire: { tenant: 'initech', readsPathOf: 'acme' } }),
    });
  });
  afterAll(async () => {
    await h?.close();
    moto?.client.destroy();
    await rm(dir, { recursive: true, force: true });
    process.env = savedEnv;
  });

  async function allow(principal: string, tool: string, args: Record<string, unknown>, token?: string) {
    const t = token ?? (await h.token(principal, 'crm-mcp'));
    const answer = await h.authorize('crm-mcp', { token: t, tool, arguments: args, call_id: callId(tool) });
    return { answer, token: t };
  }
  const complete = (id: string) => h.post('/v1/complete', { call_id: id, status: 'success' }, h.serverKeys['crm-mcp']);
  const revoke = (target: Record<string, string>) => h.post('/v1/revoke', { ...target, reason: 'test' }, h.operatorToken);

  test('acme resolves its own KV, database and AWS secrets through /v1/authorize', async () => {
    const kv = (await allow('acme-agent', 'query_crm', { path: 'acme/accounts' })).answer;
    expect(kv.status).toBe(200);
    expect(kv.body.credential).toMatchObject({ source: 'vault', value: bao.tenants.acme!.kvSecret.api_key });

    const db = (await allow('acme-agent', 'export_report', {})).answer;
    expect(db.status).toBe(200);
    expect(db.body.credential.source).toBe('vault-database');
    expect(db.body.credential.lease_id).toMatch(new RegExp(`^database/creds/${bao.tenants.acme!.dbRole}/`));
    const login = JSON.parse(db.body.credential.value);
    expect((await tryPostgresLogin(env.DATABASE_URL, login)).ok).toBe(true);

    const aws = (await allow('acme-agent', 'send_email', {})).answer;
    expect(aws.status).toBe(200);
    expect(aws.body.credential).toMatchObject({ source: 'aws', value: moto.tenants.acme!.secret.api_key });

    for (const a of [kv, db, aws]) expect((await complete(a.body.call_id)).status).toBe(200);
  });

  test('/v1/complete gives the database lease back: Vault no longer knows it and PostgreSQL refuses the login', async () => {
    const { answer } = await allow('globex-agent', 'export_report', {});
    expect(answer.status).toBe(200);
    const { lease_id: leaseId, value } = answer.body.credential;
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, leaseId)).status).toBe(200);

    const done = await complete(answer.body.call_id);
    expect(done.body).toMatchObject({ completed: true, upstream_leases_revoked: 1 });

    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, leaseId)).status).toBe(400);
    expect((await tryPostgresLogin(env.DATABASE_URL, JSON.parse(value))).ok).toBe(false);
  });

  test("killing a session revokes its open database leases: gone in Vault, refused by PostgreSQL, and the session's next call is denied", async () => {
    const first = await allow('acme-agent', 'export_report', {});
    const second = await allow('acme-agent', 'export_report', {}, first.token);
    expect([first.answer.status, second.answer.status]).toEqual([200, 200]);
    const session = first.answer.body.session as string;
    expect(second.answer.body.session).toBe(session);

    const killed = await revoke({ session });
    expect(killed.status).toBe(200);
    expect(killed.body.upstream_leases_revoked).toBe(2);

    for (const a of [first.answer, second.answer]) {
      expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, a.body.credential.lease_id)).status).toBe(400);
      expect((await tryPostgresLogin(env.DATABASE_URL, JSON.parse(a.body.credential.value))).ok).toBe(false);
    }
    const after = await allow('acme-agent', 'export_report', {}, first.token);
    expect(after.answer.body).toMatchObject({ decision: 'deny', reason: 'session_revoked' });
  });

  test("killing a tenant revokes that tenant's leases across its sessions and leaves other tenants' leases alone", async () => {
    const i1 = (await allow('initech-agent', 'export_report', {})).answer;
    const i2 = (await allow('initech-agent', 'export_report', {})).answer;
    const g = (await allow('globex-agent', 'export_report', {})).answer;
    expect(i1.body.session).not.toBe(i2.body.session);

    const killed = await revoke({ tenant: 'initech' });
    expect(killed.body.upstream_leases_revoked).toBe(2);
    for (const a of [i1, i2]) {
      expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, a.body.credential.lease_id)).status).toBe(400);
      expect((await tryPostgresLogin(env.DATABASE_URL, JSON.parse(a.body.credential.value))).ok).toBe(false);
    }
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, g.body.credential.lease_id)).status).toBe(200);
    expect((await tryPostgresLogin(env.DATABASE_URL, JSON.parse(g.body.credential.value))).ok).toBe(true);

    expect((await h.post('/v1/restore', { tenant: 'initech' }, h.operatorToken)).status).toBe(200);
    expect((await complete(g.body.call_id)).body.upstream_leases_revoked).toBe(1);
  });

  test("a policy that points initech at acme's Vault path is refused by Vault (403): the client gets upstream_unavailable and nothing of why", async () => {
    const { answer } = await allow('initech-agent', 'query_crm', { path: 'initech/x' });
    expect(answer.status).toBe(503);
    expect(answer.body).toMatchObject({ decision: 'deny', reason: 'upstream_unavailable' });
    expect(answer.body).not.toHaveProperty('credential');
    const text = JSON.stringify(answer.body);
    for (const leak of [bao.tenants.acme!.kvPath, 'tenants/', 'permission denied', bao.tenants.acme!.kvSecret.api_key]) expect(text).not.toContain(leak);

    await h.flushLogs();
    const log = await readFile(h.logFile, 'utf8');
    const line = log.split('\n').find((l) => l.includes('upstream credential source failed') && l.includes('"status":403'));
    expect(line).toBeDefined();
  });

  test('an AWS secret rotated by PutSecretValue is what the very next call gets', async () => {
    const m = moto.tenants.globex!;
    expect((await allow('globex-agent', 'send_email', {})).answer.body.credential.value).toBe(m.secret.api_key);
    const rotated = { ...m.secret, api_key: `${m.secret.api_key}-rotated` };
    await moto.client.send(new PutSecretValueCommand({ SecretId: m.secretId, SecretString: JSON.stringify(rotated) }));
    const next = (await allow('globex-agent', 'send_email', {})).answer;
    expect(next.body.credential.value).toBe(rotated.api_key);
    m.secret = rotated;
  });

  test('no upstream secret, AppRole id or leased password appears in the broker log or in any deny body', async () => {
    await h.flushLogs();
    const log = await readFile(h.logFile, 'utf8');
    const needles: string[] = [];
    for (const t of Object.values(bao.tenants)) {
      needles.push(t.kvSecret.api_key, t.kvSecret.password, (await readFile(t.roleIdFile, 'utf8')).trim(), (await readFile(t.secretIdFile, 'utf8')).trim());
    }
    for (const t of Object.values(moto.tenants)) needles.push(t.secret.api_key, t.secret.password);
    const allows = h.exchanges.filter((x) => x.path === '/v1/authorize' && x.status === 200).map((x) => JSON.parse(x.text).credential.value as string);
    for (const v of allows) if (v.startsWith('{')) needles.push(JSON.parse(v).password);
    const denies = h.exchanges.filter((x) => x.status !== 200).map((x) => x.text);
    for (const needle of needles) {
      expect(log.includes(needle)).toBe(false);
      for (const body of denies) expect(body.includes(needle)).toBe(false);
    }
    expect(needles.length).toBeGreaterThan(10);
  });
});
