import { manualClock } from '../../src/clock';
import { startHarness, isolationPolicy, type Harness } from '../support/broker-harness';
import { callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * A session has an absolute lifetime (`broker.session_max_lifetime`, default 8h): a chain of refreshes
 * cannot keep a `sid` alive past session start (`auth_time`, carried in the signed token so every
 * replica agrees) + that lifetime. A token's lifetime is the `expires_in` asked for, clamped to the cap
 * (max_token_ttl, and the session's end), and the answer's `expires_in` is what was granted, never the
 * default in disguise. The broker runs on a clock the test moves; everything else is real HTTP.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };

let h: Harness;
const clock = manualClock(Date.UTC(2030, 0, 1, 9, 0, 0));

beforeAll(async () => {
  h = await startHarness({ brokerOptions: { clock } });
});

afterAll(async () => {
  await h?.close();
});

const own = (principal = 'acme-agent') => ({ client_id: principal, client_secret: h.clientSecrets[principal]! });
const refresh = (token: string, extra: Record<string, unknown> = {}) => h.tokenRequest({ ...EXCHANGE, subject_token: token, ...own(claimsOf(token).sub), ...extra }, { form: true });
const grant = (extra: Record<string, unknown> = {}) => h.tokenRequest({ grant_type: 'client_credentials', audience: 'crm-mcp', ...own(), ...extra });

describe('a session ends at auth_time + session_max_lifetime (8h by default), however it is refreshed', () => {
  it('lets a refresh chain run until the session ends, clamps the last token to the end, then refuses (invalid_grant)', async () => {
    const first = await h.token('acme-agent', 'crm-mcp', { expires_in: '3600' });
    const start = claimsOf(first).auth_time as number;
    expect(start).toBe(claimsOf(first).iat);
    const end = start + 8 * 3600;
    let current = first;
    // Every 50 minutes, ask for a whole hour more: granted in full until the session's end is near.
    for (let i = 1; i * 50 * MINUTE < 8 * HOUR; i++) {
      clock.advance(50 * MINUTE);
      const answer = await refresh(current, { expires_in: '3600' });
      expect(answer.status).toBe(200);
      current = answer.body.access_token;
      const claims = claimsOf(current);
      expect({ sid: claims.sid, auth_time: claims.auth_time }).toEqual({ sid: claimsOf(first).sid, auth_time: start });
      expect(claims.exp).toBe(Math.min(claims.iat + 3600, end));
      expect(answer.body.expires_in).toBe(claims.exp - claims.iat);
    }
    // 9 × 50 min = 7h30m in: the last grant was clamped to the 30 minutes left, and said so.
    expect(claimsOf(current).exp).toBe(end);
    expectAllow(h, await h.authorize('crm-mcp', { token: current, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');

    // At the session's end the last token still verifies (within the 5 s skew), but no second of session is left to grant.
    clock.set(end * 1000 + 500);
    const last = await refresh(current);
    expect([last.status, last.body.error]).toEqual([400, 'invalid_grant']);
    expect(last.body).not.toHaveProperty('access_token');
    expect(last.body.error_description).toMatch(/session_max_lifetime/);

    // At the end, the last token of the session is expired, with the session.
    clock.set(end * 1000 + 6000);
    const id = callId('session-over');
    expectDeny(h, await h.authorize('crm-mcp', { token: current, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'token_expired');
    await expectNoAllowAnywhere(h, [id]);
    // A new session is a new authentication, with its own start.
    const fresh = await h.token('acme-agent', 'crm-mcp');
    expect(claimsOf(fresh).sid).not.toBe(claimsOf(first).sid);
    expect(claimsOf(fresh).auth_time).toBeGreaterThan(end);
  });

  it('cannot be reset by editing auth_time (the signature covers it)', async () => {
    const token = await h.token('acme-agent', 'crm-mcp');
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const edited = `${header}.${Buffer.from(JSON.stringify({ ...claims, auth_time: claims.auth_time + 3600 })).toString('base64url')}.${signature}`;
    const answer = await refresh(edited);
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_grant']);
    const id = callId('edited-auth-time');
    expectDeny(h, await h.authorize('crm-mcp', { token: edited, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'token_invalid');
    await expectNoAllowAnywhere(h, [id]);
  });
});

describe('a token lives for the expires_in asked for, clamped to the cap, and the answer says what was granted', () => {
  it.each([
    ['1800 (above token_ttl, below the cap)', '1800', 1800],
    ['60', '60', 60],
    ['3600 (exactly max_token_ttl)', '3600', 3600],
    ['7200 (above max_token_ttl)', '7200', 3600],
    ['a huge number', '99999999999999999999', 3600],
  ])('grants expires_in=%s on a refresh and on client_credentials', async (_label, asked, granted) => {
    const first = await h.token('acme-agent', 'crm-mcp');
    for (const answer of [await refresh(first, { expires_in: asked }), await grant({ expires_in: asked })]) {
      expect(answer.status).toBe(200);
      const claims = claimsOf(answer.body.access_token);
      expect([answer.body.expires_in, claims.exp - claims.iat]).toEqual([granted, granted]);
    }
  });

  it('grants a JSON number expires_in the same way, huge ones clamped', async () => {
    const first = await h.token('acme-agent', 'crm-mcp');
    // (JSON integers beyond Number.MAX_SAFE_INTEGER are refused as bad_request before this is reached.)
    for (const [asked, granted] of [[1800, 1800], [10 ** 15, 3600], [Number.MAX_SAFE_INTEGER, 3600]] as const) {
      const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: first, ...own(), expires_in: asked });
      expect([answer.status, answer.body.expires_in]).toEqual([200, granted]);
    }
  });

  it('uses token_ttl only when no expires_in is asked for', async () => {
    const first = await h.token('acme-agent', 'crm-mcp');
    const answer = await refresh(first);
    expect(answer.body.expires_in).toBe(15 * 60);
  });

  it.each([['0'], ['-5'], ['1.5'], ['1e3'], ['0x10'], [' 60'], ['abc'], ['']])('refuses expires_in=%j (form) with invalid_request and issues nothing', async (asked) => {
    const first = await h.token('acme-agent', 'crm-mcp');
    const before = h.issuedTokens.length;
    for (const answer of [await refresh(first, { expires_in: asked }), await h.tokenRequest({ grant_type: 'client_credentials', audience: 'crm-mcp', ...own(), expires_in: asked }, { form: true })]) {
      expect([answer.status, answer.body.error]).toEqual([400, 'invalid_request']);
      expect(answer.body).not.toHaveProperty('access_token');
    }
    expect(h.issuedTokens.length).toBe(before);
  });

  it.each([[0], [-1], [1.5], [-1e21], [Number.NaN], [true], [[60]], [{ s: 60 }]])('refuses expires_in=%j (JSON) with invalid_request and issues nothing', async (asked) => {
    const first = await h.token('acme-agent', 'crm-mcp');
    const before = h.issuedTokens.length;
    const answer = await h.tokenRequest({ ...EXCHANGE, subject_token: first, ...own(), expires_in: asked });
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_request']);
    expect(h.issuedTokens.length).toBe(before);
  });
});

describe('policy: session_max_lifetime', () => {
  const hashes = { servers: { 'crm-mcp': 'a'.repeat(64), 'mail-mcp': 'b'.repeat(64) }, operator: 'c'.repeat(64), clients: {} as Record<string, string> };
  for (const t of ['acme', 'globex', 'initech']) for (const p of ['agent', 'reader']) hashes.clients[`${t}-${p}`] = 'd'.repeat(64);

  it('refuses a session_max_lifetime shorter than max_token_ttl, naming the field', () => {
    expect(() => isolationPolicy(hashes, (p) => (p.broker.session_max_lifetime = '30m'))).toThrow(/broker\.session_max_lifetime: must be at least max_token_ttl/);
    expect(() => isolationPolicy(hashes, (p) => Object.assign(p.broker, { max_token_ttl: '20m', session_max_lifetime: '19m' }))).toThrow(/broker\.session_max_lifetime/);
  });

  it('defaults to 8h and accepts one equal to max_token_ttl', () => {
    expect(isolationPolicy(hashes).broker.session_max_lifetime).toBe(8 * HOUR);
    expect(isolationPolicy(hashes, (p) => (p.broker.session_max_lifetime = '60m')).broker.session_max_lifetime).toBe(HOUR);
  });
});

describe('a shorter session_max_lifetime', () => {
  let short: Harness;
  const shortClock = manualClock(Date.UTC(2030, 0, 2, 9, 0, 0));
  beforeAll(async () => {
    short = await startHarness({ brokerOptions: { clock: shortClock }, overrides: (p) => (p.broker.session_max_lifetime = '90m') });
  });
  afterAll(async () => {
    await short?.close();
  });

  it('clamps a refresh to the session end and refuses the next, even when the token itself is fresh', async () => {
    const first = await short.token('globex-agent', 'crm-mcp', { expires_in: '3600' });
    const start = claimsOf(first).auth_time as number;
    shortClock.advance(59 * MINUTE);
    const exchange = (token: string) => short.tokenRequest({ ...EXCHANGE, subject_token: token, client_id: 'globex-agent', client_secret: short.clientSecrets['globex-agent'], expires_in: 3600 });
    const second = await exchange(first);
    expect(second.body.expires_in).toBe(31 * 60);
    expect(claimsOf(second.body.access_token).exp).toBe(start + 90 * 60);
    shortClock.advance(31 * MINUTE);
    const third = await exchange(second.body.access_token);
    expect([third.status, third.body.error]).toEqual([400, 'invalid_grant']);
    expect(third.body).not.toHaveProperty('access_token');
  });
});

describe('secrets', () => {
  it("leaks none of the run's secrets or tokens into logs, the data dir, responses or metrics", async () => {
    expect(await findLeaks(h)).toEqual([]);
  });
});
