import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../support/broker-harness';
import { callId } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';
import { bootstrapBao, type BaoFixture } from './support/bao-bootstrap';
import { bootstrapMoto, type MotoFixture } from './support/moto-bootstrap';
import { startPrivateUpstreams, type PrivateUpstreams } from './support/private-upstreams';
import { withUpstreams } from './support/upstream-policy';

/**
 * Fail closed, then recover: OpenBao or moto stopped in the middle of a run turns the next call into
 * 503 upstream_unavailable with no credential; once it is back, calls are allowed again without
 * restarting the broker. Uses a private OpenBao and moto (scripts/upstreams.sh on free ports) so
 * stopping them cannot break suites running in parallel on the shared ones.
 */
describeWithUpstream(['bao', 'moto'], 'upstream outage and recovery', () => {
  const env = upstreamEnv();
  let up: PrivateUpstreams;
  let dir: string;
  let bao: BaoFixture;
  let moto: MotoFixture;
  let h: Harness;
  const savedEnv = { ...process.env };
  const tenants = ['acme', 'globex'];

  // OpenBao dev mode and moto keep everything in memory: after a restart, set them up again with the
  // same names, files and values, as an operator's provisioning would.
  const provisionBao = () => bootstrapBao({ address: up.vaultAddr, rootToken: env.VAULT_TOKEN, tenants, dir, runId: bao?.runId, kvSecrets: bao && Object.fromEntries(Object.entries(bao.tenants).map(([t, f]) => [t, f.kvSecret])) });
  const provisionMoto = () => bootstrapMoto({ endpoint: up.awsEndpoint, tenants, runId: moto?.runId, secrets: moto && Object.fromEntries(Object.entries(moto.tenants).map(([t, f]) => [t, f.secret])) });

  beforeAll(async () => {
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY, AWS_REGION: env.AWS_REGION });
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-outage-'));
    up = await startPrivateUpstreams(['bao', 'moto']);
    bao = await provisionBao();
    moto = await provisionMoto();
    h = await startHarness({ overrides: withUpstreams({ vaultAddr: up.vaultAddr, awsEndpoint: up.awsEndpoint, region: env.AWS_REGION, timeout: '1s', bao, moto }) });
  }, 180_000);
  afterAll(async () => {
    await h?.close();
    moto?.client.destroy();
    await up?.close();
    await rm(dir, { recursive: true, force: true });
    process.env = savedEnv;
  }, 60_000);

  async function call(tool: 'query_crm' | 'send_email') {
    const token = await h.token('acme-agent', 'crm-mcp');
    const answer = await h.authorize('crm-mcp', { token, tool, arguments: tool === 'query_crm' ? { path: 'acme/x' } : {}, call_id: callId(tool) });
    if (answer.status === 200) await h.post('/v1/complete', { call_id: answer.body.call_id, status: 'success' }, h.serverKeys['crm-mcp']);
    return answer;
  }

  test('OpenBao stopped mid-run: 503 upstream_unavailable with no credential; back again: allowed, same broker', async () => {
    expect((await call('query_crm')).body.credential.value).toBe(bao.tenants.acme!.kvSecret.api_key);

    await up.stop('bao');
    const down = await call('query_crm');
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ decision: 'deny', reason: 'upstream_unavailable' });
    expect(down.body).not.toHaveProperty('credential');
    // Other sources keep working while Vault is down.
    expect((await call('send_email')).status).toBe(200);

    await up.start('bao');
    bao = await provisionBao();
    // The broker's old token died with the old OpenBao: its 403 makes the adapter log in again.
    const back = await call('query_crm');
    expect(back.status).toBe(200);
    expect(back.body.credential.value).toBe(bao.tenants.acme!.kvSecret.api_key);
  }, 120_000);

  test('moto stopped mid-run: 503 upstream_unavailable with no credential; back again: allowed, same broker', async () => {
    expect((await call('send_email')).body.credential.value).toBe(moto.tenants.acme!.secret.api_key);

    await up.stop('moto');
    const down = await call('send_email');
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ decision: 'deny', reason: 'upstream_unavailable' });
    expect(down.body).not.toHaveProperty('credential');
    expect((await call('query_crm')).status).toBe(200);

    await up.start('moto');
    moto = await provisionMoto();
    const back = await call('send_email');
    expect(back.status).toBe(200);
    expect(back.body.credential.value).toBe(moto.tenants.acme!.secret.api_key);
  }, 120_000);
});
