import { manualClock } from '../../src/clock';
import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Expiry of the broker's own tokens is (nearly) exact: its replicas share the clock that issued them, so
 * the leeway is `broker.token_clock_skew` (default 5 s), not the 30 s `clock_skew` kept for tenant IdP
 * tokens (that side is proven in hostile-idp.test.ts). An expired token is denied `token_expired`
 * whether or not the broker had verified (and cached) it before, and cannot be refreshed.
 */

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
const call = (token: string, id: string) => ({ token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id });

describe.each([
  ['the default token_clock_skew (5 s)', undefined, 5],
  ['token_clock_skew: 0s', '0s', 0],
  ['token_clock_skew: 2s', '2s', 2],
])('with %s', (_label, skew, skewSeconds) => {
  let h: Harness;
  const clock = manualClock(Date.UTC(2030, 0, 1, 9, 0, 0, 0));

  beforeAll(async () => {
    h = await startHarness({ brokerOptions: { clock }, overrides: (p) => skew !== undefined && (p.broker.token_clock_skew = skew) });
  });
  afterAll(async () => {
    await h?.close();
  });

  async function expectExpired(token: string): Promise<void> {
    const before = await allAudit(h);
    const id = callId('expired');
    expectDeny(h, await h.authorize('crm-mcp', call(token, id)), 403, 'token_expired');
    await expectNoAllowAnywhere(h, [id], before, 'acme');
    const refresh = await h.tokenRequest({ ...EXCHANGE, subject_token: token, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
    expect([refresh.status, refresh.body.error, refresh.body.error_description]).toEqual([400, 'invalid_grant', 'subject_token has expired']);
    expect(refresh.body).not.toHaveProperty('access_token');
  }

  it('denies a token it had already verified (and cached) once the leeway after exp has passed', async () => {
    const token = await h.token('acme-agent', 'crm-mcp', { expires_in: '10' });
    const { exp } = claimsOf(token);
    expectAllow(h, await h.authorize('crm-mcp', call(token, callId('fresh'))), 'acme');
    // The last instant the leeway allows: still good (and proves the skew is not zero when configured).
    clock.set((exp + skewSeconds) * 1000 - 1);
    expectAllow(h, await h.authorize('crm-mcp', call(token, callId('edge'))), 'acme');
    clock.set((exp + skewSeconds) * 1000);
    await expectExpired(token);
    // Well inside the old 30 s window: still dead.
    clock.set((exp + 6) * 1000);
    await expectExpired(token);
  });

  it('denies a token it has never seen, one second past the leeway', async () => {
    const token = await h.token('acme-agent', 'crm-mcp', { expires_in: '10' });
    clock.set((claimsOf(token).exp + skewSeconds + 1) * 1000);
    await expectExpired(token);
  });

  it('never allowed anything past the leeway, and leaks nothing', async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});

it('refuses a token_clock_skew above 60s, naming the field', async () => {
  await expect(startHarness({ overrides: (p) => (p.broker.token_clock_skew = '2m') })).rejects.toThrow(/broker\.token_clock_skew: must be at most 60s/);
});
