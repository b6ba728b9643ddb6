import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createVaultSourceFor } from '../../src/compose/credential-sources';
import { createTenantSecretStore } from '../../src/compose/secret-store';
import { sha256Hex } from '../../src/crypto/hash';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { createLogger } from '../../src/observability/logger';
import { isolationPolicy } from '../support/broker-harness';
import { CLI, ensureBuiltCli } from '../support/built-cli';
import { freePort } from '../support/free-port';
import { gatedProxy } from '../support/gated-proxy';
import { callId } from '../support/isolation-assertions';
import { until } from '../support/until';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { baoApi, bootstrapBao } from './support/bao-bootstrap';

/**
 * A tenant delete killed mid-way resumes. acme's data keys are under an OpenBao transit key; the
 * broker (a real `bulkhead serve` process) is SIGKILLed while the delete waits on OpenBao to destroy
 * that key, after the revoke step was journaled. Restarted, acme is still revoked (the first step
 * held), its key and secrets still there; the same delete run again skips the revoke, destroys the
 * transit key, finishes every other step and writes one tombstone. globex works throughout.
 */
jest.setTimeout(120_000);

describeWithUpstream(['bao'], 'tenant delete resumes after the broker is killed mid-delete', () => {
  const env = upstreamEnv();
  const proxy = gatedProxy(() => env.VAULT_ADDR);
  const random = () => randomBytes(18).toString('base64url');
  const operatorToken = random();
  const serverKey = random();
  const clientSecrets: Record<string, string> = {};
  for (const t of ['acme', 'globex', 'initech']) for (const p of ['agent', 'reader']) clientSecrets[`${t}-${p}`] = random();
  let dir: string;
  let dataDir: string;
  let policyFile: string;
  let transitMount: string;
  let root: ReturnType<typeof baoApi>;
  let child: ChildProcess | undefined;
  let url = '';

  async function start(): Promise<void> {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [CLI, 'serve', '--config', policyFile, '--data-dir', dataDir, '--port', String(port)], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, BULKHEAD_LOG_LEVEL: 'warn' } });
    await until(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, 'the broker did not become ready', 2000);
  }

  async function stop(signal: NodeJS.Signals): Promise<void> {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  }

  const post = async (path: string, body: unknown, bearer: string) => {
    const answer = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` }, body: JSON.stringify(body) });
    return { status: answer.status, body: (await answer.json()) as any };
  };
  async function query(tenant: string) {
    const token = await fetch(`${url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: `${tenant}-agent`, client_secret: clientSecrets[`${tenant}-agent`]!, audience: 'crm-mcp' }),
    }).then((r) => r.json() as Promise<any>);
    if (!token.access_token) return { reason: token.error as string };
    const answer = await post('/v1/authorize', { token: token.access_token, tool: 'query_crm', arguments: { path: `${tenant}/a` }, call_id: callId(tenant) }, serverKey);
    return { status: answer.status, reason: answer.body.reason as string | undefined, value: answer.body.credential?.value as string | undefined };
  }
  const auditOf = async (tenant: string) => (await fetch(`${url}/v1/audit?tenant=${tenant}&limit=10000`, { headers: { authorization: `Bearer ${operatorToken}` } }).then((r) => r.json() as Promise<any>)).events as any[];

  beforeAll(async () => {
    await ensureBuiltCli();
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-delete-resume-'));
    dataDir = join(dir, 'data');
    const bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir });
    root = baoApi(env.VAULT_ADDR, env.VAULT_TOKEN);
    transitMount = `transit-${bao.runId}`;
    expect((await root('POST', `sys/mounts/${transitMount}`, { type: 'transit' })).status).toBeLessThan(300);
    expect((await root('POST', `${transitMount}/keys/acme-kek`, { type: 'aes256-gcm96' })).status).toBeLessThan(300);
    const acmePolicy = `path "${transitMount}/encrypt/acme-kek" { capabilities = ["update"] }\npath "${transitMount}/decrypt/acme-kek" { capabilities = ["update"] }\npath "${transitMount}/keys/acme-kek/config" { capabilities = ["update"] }\npath "${transitMount}/keys/acme-kek" { capabilities = ["delete"] }\n`;
    expect((await root('POST', `sys/policies/acl/${bao.tenants.acme!.policy}`, { policy: acmePolicy })).status).toBeLessThan(300);
    let raw: any;
    const policy = isolationPolicy(
      { servers: { 'crm-mcp': sha256Hex(serverKey), 'mail-mcp': sha256Hex(random()) }, operator: sha256Hex(operatorToken), clients: Object.fromEntries(Object.entries(clientSecrets).map(([k, v]) => [k, sha256Hex(v)])) },
      (p) => {
        p.broker.upstreams = { vault: { address: proxy.url, timeout: '5s' } };
        p.broker.data_key_cache = '1ms';
        p.tenants.acme.vault = { approle: { role_id_file: bao.tenants.acme!.roleIdFile, secret_id_file: bao.tenants.acme!.secretIdFile } };
        p.tenants.acme.encryption = { vault_transit: { mount: transitMount, key: 'acme-kek' } };
        raw = structuredClone(p);
      },
    );
    policyFile = join(dir, 'policy.json');
    await writeFile(policyFile, JSON.stringify(raw));
    const vault = createVaultSourceFor(policy, createLogger({ level: 'silent' }));
    const secrets = createTenantSecretStore({ policy: () => policy, dataDir, masterKey: await loadOrCreateMasterKey(dataDir), vault });
    await secrets.store.set('acme', 'crm', 'acme-transit-value');
    await secrets.store.set('globex', 'crm', 'globex-master-value');
    secrets.close();
    await vault?.close?.();
    await start();
  });

  afterAll(async () => {
    await stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  test('SIGKILL while the shred waits on OpenBao, restart, the same delete resumes and finishes', async () => {
    expect(await query('acme')).toEqual({ status: 200, reason: undefined, value: 'acme-transit-value' });
    expect(await query('globex')).toEqual({ status: 200, reason: undefined, value: 'globex-master-value' });

    proxy.hold(/\/keys\/acme-kek\/config /);
    const interrupted = post('/v1/tenants/acme/delete', { confirm: 'acme' }, operatorToken).catch((err: Error) => err);
    await proxy.held();
    await stop('SIGKILL');
    // The caller saw the connection drop, never an answer.
    expect(await interrupted).not.toHaveProperty('status');
    proxy.release();

    // Killed after the revoke step, before the shred: the key and the secret files are still there.
    expect((await root('GET', `${transitMount}/keys/acme-kek`)).status).toBe(200);
    expect(existsSync(join(dataDir, 'secrets', 'acme.key'))).toBe(true);

    await start();
    // The revocation was durable before the kill: acme stays dead across the restart.
    expect((await query('acme')).reason).toMatch(/tenant_revoked|invalid_grant/);
    expect(await query('globex')).toEqual({ status: 200, reason: undefined, value: 'globex-master-value' });

    const resumed = await post('/v1/tenants/acme/delete', { confirm: 'acme' }, operatorToken);
    expect(resumed.status).toBe(200);
    expect(resumed.body.resumed).toBe(true);
    expect(resumed.body.steps.map((s: any) => [s.step, s.status])).toEqual([
      ['revoke', 'skipped'],
      ['shred_keys', 'done'],
      ['sessions', 'done'],
      ['approvals', 'done'],
      ['quotas', 'done'],
      ['budgets', 'done'],
      ['tombstone', 'done'],
    ]);
    expect(resumed.body.steps[1].detail).toContain(`deleted vault transit key ${transitMount}/acme-kek`);
    expect((await root('GET', `${transitMount}/keys/acme-kek`)).status).toBe(404);
    expect(existsSync(join(dataDir, 'secrets', 'acme.key'))).toBe(false);
    expect(existsSync(join(dataDir, 'secrets', 'acme.json'))).toBe(false);

    const journal = (await auditOf('acme')).filter((r) => r.type === 'tenant_delete').map((r) => `${r.status} ${r.detail.split(':')[0]}`);
    expect(journal).toEqual([
      expect.stringMatching(/^started /),
      'step_done revoke',
      'step_done shred_keys',
      'step_done sessions',
      'step_done approvals',
      'step_done quotas',
      'step_done budgets',
      expect.stringMatching(/^deleted /),
    ]);
    expect(await query('globex')).toEqual({ status: 200, reason: undefined, value: 'globex-master-value' });

    // Run once more after the root is gone: still succeeds (destroying a deleted transit key is not an error).
    const again = await post('/v1/tenants/acme/delete', { confirm: 'acme' }, operatorToken);
    expect(again.status).toBe(200);
    expect(again.body.resumed).toBe(false);
    await stop('SIGTERM');
  });
});
