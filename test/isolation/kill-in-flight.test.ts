import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapBao, lookupLease, type BaoFixture } from '../integration/support/bao-bootstrap';
import { withUpstreams } from '../integration/support/upstream-policy';
import { startHarness, type Harness } from '../support/broker-harness';
import { gatedProxy } from '../support/gated-proxy';
import { DB_CREDS, expectAllowed, expectKilledInOrder, killWhileResolving, leasesMinted, metricValue } from '../support/in-flight-kills';
import { auditEvents, claimsOf, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * The kill switch against calls in flight, on the embedded default: OpenBao sits behind a proxy that
 * holds the broker's read of the credential for as long as the test needs (no timers). While a call
 * waits there, the target is revoked (session, principal, tenant, token) or its session quarantined;
 * once that has answered, the call is let through — and must be denied with the kill's reason, its
 * freshly minted lease revoked and counted, and no allow for it may follow the kill in the stream.
 */
jest.setTimeout(60_000);

describeWithUpstream(['bao', 'postgres'], 'a kill reaches the calls it finds in flight (embedded)', () => {
  const env = upstreamEnv();
  const vault = gatedProxy(() => env.VAULT_ADDR);
  let dir: string;
  let bao: BaoFixture;
  let h: Harness;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-kill-in-flight-'));
    bao = await bootstrapBao({ address: env.VAULT_ADDR, rootToken: env.VAULT_TOKEN, tenants: ['acme', 'globex', 'initech'], dir, databaseUrl: env.DATABASE_URL });
    // The upstream timeout is far above how long any hold lasts: the held call must end in an answer, not a timeout.
    h = await startHarness({ overrides: withUpstreams({ vaultAddr: vault.url, bao, withDatabase: true, timeout: '50s' }) });
  });
  afterAll(async () => {
    vault.release();
    await h?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const revoke = (target: Record<string, string | boolean>) => h.post('/v1/revoke', { ...target, reason: 'kill in flight' }, h.operatorToken);
  const complete = (id: string, records: number) => h.post('/v1/complete', { call_id: id, status: 'success', records }, h.serverKeys['crm-mcp']);

  it('denies a call whose KV read was in flight when its session was revoked (session_revoked)', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    await expectAllowed(h, token);
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, h, token, () => revoke({ session: sid }));
    expectDeny(h, answer, 403, 'session_revoked');
    await expectKilledInOrder(h, 'acme', id, 'session_revoked', (e) => e.type === 'revoke' && e.detail === `session ${sid}`, (e) => e.session === sid);
  });

  it('denies a call in flight when its principal is revoked, and leaves the tenant\'s other principal alone (principal_revoked)', async () => {
    const token = await h.token('globex-reader', 'crm-mcp');
    const bystander = await h.token('globex-agent', 'crm-mcp');
    await expectAllowed(h, token);
    await expectAllowed(h, bystander);
    const { answer, id } = await killWhileResolving(vault, h, token, () => revoke({ principal: 'globex/globex-reader' }));
    expectDeny(h, answer, 403, 'principal_revoked');
    await expectKilledInOrder(h, 'globex', id, 'principal_revoked', (e) => e.type === 'revoke' && e.detail === 'principal globex/globex-reader', (e) => e.principal === 'globex-reader');
    await expectAllowed(h, bystander);
  });

  it('denies a call in flight when one token id is revoked (token_revoked)', async () => {
    const token = await h.token('acme-reader', 'crm-mcp');
    await expectAllowed(h, token);
    const { answer, id } = await killWhileResolving(vault, h, token, () => revoke({ jti: claimsOf(token).jti, force: true }));
    expectDeny(h, answer, 403, 'token_revoked');
    await expectNoAllowAnywhere(h, [id]);
    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === id).map((e) => [e.decision, e.reason])).toEqual([
      ['intent', undefined],
      ['deny', 'token_revoked'],
    ]);
  });

  it('revokes and counts the lease minted for a leased credential the kill reached in flight', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    await expectAllowed(h, token, 'export_report');
    const before = { calls: await metricValue(h, 'bulkhead_killed_in_flight_total'), leases: await metricValue(h, 'bulkhead_killed_in_flight_leases_revoked_total') };
    const seen = vault.responses().length;
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, h, token, () => revoke({ session: sid }), { hold: DB_CREDS, tool: 'export_report' });
    expectDeny(h, answer, 403, 'session_revoked');
    await expectKilledInOrder(h, 'acme', id, 'session_revoked', (e) => e.type === 'revoke' && e.detail === `session ${sid}`, (e) => e.session === sid);
    // The lease OpenBao minted for the held read, which nobody was shown, is already revoked.
    const leases = leasesMinted(vault, seen);
    expect(leases).toHaveLength(1);
    expect((await lookupLease(env.VAULT_ADDR, env.VAULT_TOKEN, leases[0]!)).status).toBe(400);
    expect(await metricValue(h, 'bulkhead_killed_in_flight_total')).toBe(before.calls + 1);
    expect(await metricValue(h, 'bulkhead_killed_in_flight_leases_revoked_total')).toBe(before.leases + 1);
  });

  it('denies a call in flight when its session is quarantined by another call\'s completion (session_quarantined)', async () => {
    const token = await h.token('initech-agent', 'crm-mcp');
    const exporting = await expectAllowed(h, token, 'export_report');
    const sid = claimsOf(token).sid as string;
    const { answer, id } = await killWhileResolving(vault, h, token, async () => {
      const done = await complete(exporting, 5000);
      expect(done.body).toMatchObject({ quarantined: true });
      return done;
    });
    expectDeny(h, answer, 403, 'session_quarantined');
    await expectKilledInOrder(h, 'initech', id, 'session_quarantined', (e) => e.type === 'quarantine' && e.session === sid, (e) => e.session === sid);
  });

  it('denies a call in flight when its whole tenant is revoked, and other tenants keep working (tenant_revoked)', async () => {
    const token = await h.token('initech-reader', 'crm-mcp');
    const other = await h.token('acme-agent', 'crm-mcp');
    await expectAllowed(h, token);
    const { answer, id } = await killWhileResolving(vault, h, token, () => revoke({ tenant: 'initech' }));
    expectDeny(h, answer, 403, 'tenant_revoked');
    await expectKilledInOrder(h, 'initech', id, 'tenant_revoked', (e) => e.type === 'revoke' && e.detail === 'tenant initech', (e) => e.decision === 'allow');
    await expectAllowed(h, other);
    expect((await h.post('/v1/restore', { tenant: 'initech' }, h.operatorToken)).status).toBe(200);
  });
});
