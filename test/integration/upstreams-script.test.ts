import { describeWithUpstream } from '../support/upstreams';
import { startPrivateUpstreams, type PrivateUpstreams } from './support/private-upstreams';

/**
 * `scripts/upstreams.sh` starts the OpenBao every integration test and CI depend on. The caller's
 * BAO_ and VAULT_ variables are for clients, and the server reads some of them: with a log level it does
 * not know it exits at start, which in CI read as "OpenBao exited while starting" and nothing else.
 * Here a private OpenBao (own state dir and ports, the cached binary) starts under such variables.
 */
jest.setTimeout(120_000);

describeWithUpstream(['bao'], 'scripts/upstreams.sh', () => {
  const saved = { ...process.env };
  let upstreams: PrivateUpstreams | undefined;

  afterEach(async () => {
    await upstreams?.close();
    upstreams = undefined;
    process.env = { ...saved };
  });

  it('starts OpenBao whatever BAO_* and VAULT_* settings the caller has', async () => {
    Object.assign(process.env, { BAO_LOG_LEVEL: 'bogus', VAULT_LOG_LEVEL: 'bogus', BAO_ADDR: 'https://127.0.0.1:1', VAULT_ADDR: 'https://127.0.0.1:1', BAO_CACERT: '/nonexistent/ca.pem' });
    upstreams = await startPrivateUpstreams(['bao']);
    const health = await fetch(`${upstreams.vaultAddr}/v1/sys/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ initialized: true, sealed: false });
  });
});
