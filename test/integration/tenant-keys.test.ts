import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyCommand, DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { createBroker, type Broker } from '../../src/app';
import { createVaultSourceFor } from '../../src/compose/credential-sources';
import { createTenantSecretStore } from '../../src/compose/secret-store';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { createLogger } from '../../src/observability/logger';
import { parsePolicy } from '../../src/policy/load';
import { blackHoleServer } from '../support/black-hole';
import { startHarness, type Harness } from '../support/broker-harness';
import { runCli, ensureBuiltCli } from '../support/built-cli';
import { callId } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { baoApi, bootstrapBao, type BaoFixture } from './support/bao-bootstrap';

/**
 * Per-tenant key-encryption keys on real roots: acme's data key is wrapped by an OpenBao transit key
 * used with acme's own AppRole, globex's by a moto KMS key with a tenant encryption context, initech's
 * by the master key. Destroying a tenant's root (`bulkhead tenant shred`, or the tenant disabling its
 * KMS key) makes its secrets unreadable in the live data dir AND in a restored backup of the whole data
 * dir, while the other tenants keep working; an unreachable root is a 503 for that tenant only.
 */
jest.setTimeout(90_000);

describeWithUpstream(['bao', 'moto'], 'tenant key-encryption keys in OpenBao transit and AWS KMS', () => {
  const env = upstreamEnv();
  let dir: string;
  let bao: BaoFixture;
  let kms: KMSClient;
  let h: Harness;
  let rawPolicy: any;
  let policyFile: string;
  let backupDir: string;
  let transitMount: string;
  const savedEnv = { ...process.env };
  const hole = blackHoleServer();
  const values = { acme: 'acme-transit-wrapped-value', globex: 'globex-kms-wrapped-value', initech: 'initech-master-wrapped-value' };

  beforeAll(async () => {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY, AWS_REGION: env.AWS_REGION });
    await ensureBuiltCli();
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-tenant-keys-'));
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir });
    // acme's root: a transit key only acme's AppRole may use (and delete).
    const root = baoApi(env.VAULT_ADDR, env.VAULT_TOKEN);
    transitMount = `transit-${bao.runId}`;
    expect((await root('POST', `sys/mounts/${transitMount}`, { type: 'transit' })).status).toBeLessThan(300);
    expect((await root('POST', `${transitMount}/keys/acme-kek`, { type: 'aes256-gcm96' })).status).toBeLessThan(300);
    const acmePolicy = `path "${transitMount}/encrypt/acme-kek" { capabilities = ["update"] }\npath "${transitMount}/decrypt/acme-kek" { capabilities = ["update"] }\npath "${transitMount}/keys/acme-kek/config" { capabilities = ["update"] }\npath "${transitMount}/keys/acme-kek" { capabilities = ["delete"] }\n`;
    expect((await root('POST', `sys/policies/acl/${bao.tenants.acme!.policy}`, { policy: acmePolicy })).status).toBeLessThan(300);
    // globex's root: a KMS key in moto.
    kms = new KMSClient({ region: env.AWS_REGION, endpoint: env.AWS_ENDPOINT_URL, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
    const globexKey = (await kms.send(new CreateKeyCommand({ Description: `bulkhead test ${bao.runId} globex` }))).KeyMetadata!.KeyId!;

    h = await startHarness({
      overrides: (raw) => {
        raw.broker.upstreams = { vault: { address: env.VAULT_ADDR, timeout: '2s' }, aws: { region: env.AWS_REGION, endpoint: env.AWS_ENDPOINT_URL, timeout: '2s' } };
        raw.broker.data_key_cache = '1ms';
        raw.tenants.acme.vault = { approle: { role_id_file: bao.tenants.acme!.roleIdFile, secret_id_file: bao.tenants.acme!.secretIdFile } };
        raw.tenants.acme.encryption = { vault_transit: { mount: transitMount, key: 'acme-kek' } };
        raw.tenants.globex.encryption = { aws_kms: { key_id: globexKey } };
        rawPolicy = structuredClone(raw);
      },
    });
    policyFile = join(dir, 'policy.json');
    await writeFile(policyFile, JSON.stringify(rawPolicy));
    // The harness seeded every tenant's secret under the master key; writing again through the
    // tenant's root moves its data key there, as `bulkhead secret set --config` does.
    const masterKey = await loadOrCreateMasterKey(h.dataDir);
    const vault = createVaultSourceFor(h.policy, createLogger({ level: 'silent' }));
    const secrets = createTenantSecretStore({ policy: () => h.policy, dataDir: h.dataDir, masterKey, vault });
    for (const [tenant, value] of Object.entries(values)) await secrets.store.set(tenant, 'crm', value);
    secrets.close();
    await vault?.close?.();
  });
  afterAll(async () => {
    await h?.close();
    kms?.destroy();
    await rm(dir, { recursive: true, force: true });
    process.env = savedEnv;
  });

  async function query(target: { url: string; token: (p: string) => Promise<string> }, tenant: string) {
    const token = await target.token(`${tenant}-agent`);
    const response = await fetch(`${target.url}/v1/authorize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${h.serverKeys['crm-mcp']}` },
      body: JSON.stringify({ token, tool: 'query_crm', arguments: { path: `${tenant}/accounts` }, call_id: callId('kek') }),
    });
    const body = (await response.json()) as any;
    return { status: response.status, reason: body.reason as string | undefined, value: body.credential?.value as string | undefined };
  }
  const live = () => ({ url: h.url, token: (p: string) => h.token(p, 'crm-mcp') });

  async function brokerOn(dataDir: string, policy = h.policy): Promise<{ broker: Broker; url: string; token: (p: string) => Promise<string> }> {
    const broker = await createBroker({ policy, dataDir, logger: createLogger({ level: 'silent' }) });
    const { url } = await broker.listen();
    const token = async (principal: string) => {
      const answer = await fetch(`${url}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: principal, client_secret: h.clientSecrets[principal]!, audience: 'crm-mcp' }),
      });
      return ((await answer.json()) as { access_token: string }).access_token;
    };
    return { broker, url, token };
  }

  test("each tenant's data key is wrapped by its own root, and every tenant reads its own secret", async () => {
    const files = await Promise.all(['acme', 'globex', 'initech'].map(async (t) => JSON.parse(await readFile(join(h.dataDir, 'secrets', `${t}.key`), 'utf8'))));
    expect(files.map((f) => f.kek)).toEqual([`vault_transit:${transitMount}/acme-kek`, expect.stringMatching(/^aws_kms:/), 'master']);
    expect(files[0].wrapped).toMatch(/^vault:v1:/);
    for (const [tenant, value] of Object.entries(values)) expect(await query(live(), tenant)).toEqual({ status: 200, reason: undefined, value });
    // The argument keys (of arguments_mac) made by those first calls are wrapped by the same roots.
    const argumentKeys = await Promise.all(['acme', 'globex', 'initech'].map(async (t) => JSON.parse(await readFile(join(h.dataDir, 'argument-keys', `${t}.json`), 'utf8'))));
    expect(argumentKeys.map((f) => f.kek)).toEqual(files.map((f) => f.kek));
    expect(argumentKeys[0].wrapped).toMatch(/^vault:v1:/);
    backupDir = join(dir, 'backup');
    await cp(h.dataDir, backupDir, { recursive: true });
  });

  test("a wrapped key moved into another tenant's file does not open (the context names the tenant)", async () => {
    const scratch = join(dir, 'swapped');
    await cp(backupDir, scratch, { recursive: true });
    // globex's KMS-wrapped key presented as acme's, and acme's transit-wrapped key as globex's.
    const acmeKey = await readFile(join(scratch, 'secrets', 'acme.key'), 'utf8');
    const globexKey = await readFile(join(scratch, 'secrets', 'globex.key'), 'utf8');
    await writeFile(join(scratch, 'secrets', 'acme.key'), globexKey);
    await writeFile(join(scratch, 'secrets', 'globex.key'), acmeKey);
    const copy = await brokerOn(scratch);
    try {
      for (const tenant of ['acme', 'globex']) expect(await query(copy, tenant)).toMatchObject({ status: 503, reason: 'upstream_unavailable', value: undefined });
      expect(await query(copy, 'initech')).toMatchObject({ status: 200, value: values.initech });
    } finally {
      await copy.broker.close();
    }
  });

  test("a KMS that does not answer is a 503 for the tenant whose root it holds, and for no other", async () => {
    const scratch = join(dir, 'kms-outage');
    await cp(backupDir, scratch, { recursive: true });
    const outage = structuredClone(rawPolicy);
    outage.broker.upstreams.aws.endpoint = hole.url;
    outage.broker.upstreams.aws.timeout = '300ms';
    const copy = await brokerOn(scratch, parsePolicy(outage));
    try {
      expect(await query(copy, 'globex')).toMatchObject({ status: 503, reason: 'upstream_unavailable', value: undefined });
      expect(await query(copy, 'acme')).toMatchObject({ status: 200, value: values.acme });
      expect(await query(copy, 'initech')).toMatchObject({ status: 200, value: values.initech });
    } finally {
      await copy.broker.close();
    }
  });

  test('bulkhead tenant shred destroys the transit key: acme is unreadable live, the others are not', async () => {
    const dry = await runCli(['tenant', 'shred', 'acme', '--config', policyFile, '--data-dir', h.dataDir]);
    expect(dry.code).toBe(2);
    expect(dry.stderr).toContain(`destroy vault_transit:${transitMount}/acme-kek`);
    const shred = await runCli(['tenant', 'shred', 'acme', '--yes', '--config', policyFile, '--data-dir', h.dataDir]);
    expect([shred.code, shred.stderr]).toEqual([0, '']);
    expect(shred.stdout).toContain(`deleted vault transit key ${transitMount}/acme-kek`);
    expect(shred.stdout).toContain('backups included');
    // Refused outright: the argument key is a tombstone now (and its root is gone anyway).
    expect(await query(live(), 'acme')).toMatchObject({ status: 403, reason: 'tenant_shredded' });
    expect(await query(live(), 'globex')).toMatchObject({ status: 200, value: values.globex });
    expect(await query(live(), 'initech')).toMatchObject({ status: 200, value: values.initech });
  });

  test('bulkhead tenant shred disables and schedules the deletion of the KMS key; globex is unreadable live', async () => {
    const keyId = (h.policy.tenants.globex!.encryption as { aws_kms: { key_id: string } }).aws_kms.key_id;
    const shred = await runCli(['tenant', 'shred', 'globex', '--yes', '--config', policyFile, '--data-dir', h.dataDir]);
    expect([shred.code, shred.stderr]).toEqual([0, '']);
    expect(shred.stdout).toContain(`disabled aws kms key ${keyId} and scheduled its deletion in 7 days`);
    const state = (await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!;
    expect(state.KeyState).toBe('PendingDeletion');
    // Run again (a shred or tenant delete that died after KMS scheduled the deletion): the key counts as destroyed.
    const again = await runCli(['tenant', 'shred', 'globex', '--yes', '--config', policyFile, '--data-dir', h.dataDir]);
    expect([again.code, again.stderr]).toEqual([0, '']);
    expect(again.stdout).toMatch(new RegExp(`(already disabled and pending deletion|disabled aws kms key ${keyId} and scheduled)`));
    expect(await query(live(), 'globex')).toMatchObject({ status: 403, reason: 'tenant_shredded', value: undefined });
    expect(await query(live(), 'initech')).toMatchObject({ status: 200, value: values.initech });
    // moto keeps decrypting under a disabled key (real KMS refuses: KMSInvalidStateException), so the
    // backup half of this shred is proven on OpenBao transit below, not here.
  });

  test('a restored backup of the whole data dir cannot open the transit-shredded tenant; the master-key tenant opens', async () => {
    const restored = await brokerOn(backupDir);
    try {
      // The backup holds acme's argument key from before the shred, but wrapped by the deleted transit key.
      expect(await query(restored, 'acme')).toMatchObject({ status: 503, reason: 'upstream_unavailable', value: undefined });
      // Truthfully: a tenant whose root is the master key is back with the backup (docs/cli.md says so).
      expect(await query(restored, 'initech')).toMatchObject({ status: 200, value: values.initech });
    } finally {
      await restored.broker.close();
    }
    const dump = JSON.stringify(await Promise.all(['acme', 'globex'].map((t) => readFile(join(backupDir, 'secrets', `${t}.json`), 'utf8'))));
    expect(dump).not.toContain(values.acme);
    expect(dump).not.toContain(values.globex);
  });
});
