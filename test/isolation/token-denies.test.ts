import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, generateKeyPair } from 'jose';
import { SECURITY_STREAM } from '../../src/audit/security-stream';
import { manualClock } from '../../src/clock';
import { sha256Hex } from '../../src/crypto/hash';
import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, claimsOf, expectDeny, headerOf } from '../support/isolation-assertions';
import { startIdps, type Idp } from '../support/idp-server';
import { findLeaks } from '../support/leak-scan';

/**
 * Every decision is recorded, in the stream it belongs to and nowhere else:
 * - a token whose signature verified but that is expired, for another server or revoked (every kind)
 *   is a deny in ITS tenant's stream, with the reason, at every endpoint that takes a token;
 * - a token with no verifiable tenant (forged, edited, alg none, truncated, garbage, unknown kid,
 *   another broker's) and a wrong server key go to the broker's security stream, with the token's
 *   fingerprint and never the token — and a forged token claiming tenant X leaves X's stream untouched;
 * - the platform log line of each names the reason and no tenant.
 */
jest.setTimeout(90_000);

const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
let h: Harness;
let other: Harness;
/** Every token presented in this suite that the broker did not hand out through h (for the leak scan). */
const presented: string[] = [];

beforeAll(async () => {
  [h, other] = await Promise.all([startHarness({ brokerOptions: { clock } }), startHarness({ brokerOptions: { clock } })]);
});

afterAll(async () => {
  await Promise.all([h?.close(), other?.close()]);
});

const STREAMS = ['acme', 'globex', 'initech', SECURITY_STREAM];
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

async function snapshot(): Promise<Record<string, any[]>> {
  const out: Record<string, any[]> = {};
  for (const stream of STREAMS) out[stream] = await auditEvents(h, stream);
  return out;
}

/**
 * Runs `attempt`, then asserts that exactly one record was added, to `stream`, and that every other
 * stream is as it was. Returns that record and the attempt's answer.
 */
async function recordedOnlyIn<T extends { headers: Headers }>(stream: string, attempt: () => Promise<T>): Promise<{ record: any; answer: T }> {
  const before = await snapshot();
  const answer = await attempt();
  const after = await snapshot();
  for (const s of STREAMS) {
    if (s === stream) continue;
    expect({ stream: s, events: after[s] }).toEqual({ stream: s, events: before[s] });
  }
  const added = after[stream]!.slice(before[stream]!.length);
  expect({ stream, added: added.length }).toEqual({ stream, added: 1 });
  const record = added[0];
  // The record names the HTTP request that caused it (the one join key with the platform log).
  expect(record.request_id).toBe(answer.headers.get('x-request-id'));
  return { record, answer };
}

/** The request's platform log line: it names the reason, and no tenant. */
async function logLineOf(requestId: string): Promise<Record<string, unknown>> {
  await h.flushLogs();
  const lines = (await readFile(h.logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const line = lines.find((l) => l.requestId === requestId && l.msg === 'request');
  expect(line).toBeDefined();
  for (const tenant of ['acme', 'globex', 'initech']) expect(JSON.stringify(line)).not.toContain(tenant);
  return line;
}

const authorize = (token: string, server = 'crm-mcp', tool = 'query_crm', path = 'acme/x') => {
  presented.push(token);
  return h.authorize(server, { token, tool, arguments: { path }, call_id: callId('token-deny') });
};

describe('in the tenant\'s stream: the signature verified', () => {
  it.each([
    ['never used before (jose path)', false],
    ['cached by an earlier allow', true],
  ])('records an expired token, %s, as token_expired in its tenant\'s stream', async (_name, usedBefore) => {
    const token = await h.token('acme-agent', 'crm-mcp', { expires_in: '1' });
    if (usedBefore) expect((await authorize(token)).status).toBe(200);
    clock.advance(1000 + 5_000 + 1000);
    const { record, answer } = await recordedOnlyIn('acme', () => authorize(token));
    expectDeny(h, answer, 403, 'token_expired');
    const claims = claimsOf(token);
    expect(record).toMatchObject({ type: 'authorize', decision: 'deny', reason: 'token_expired', server: 'crm-mcp', tool: 'query_crm', principal: 'acme-agent', session: claims.sid, jti: claims.jti, call_id: answer.body.call_id });
    expect(record).not.toHaveProperty('token_sha256');
    expect((await logLineOf(answer.body.request_id)).reason).toBe('token_expired');
  });

  it('records a token for another server as audience_mismatch in its tenant\'s stream', async () => {
    const token = await h.token('globex-agent', 'mail-mcp');
    const { record, answer } = await recordedOnlyIn('globex', () => authorize(token, 'crm-mcp', 'query_crm', 'globex/x'));
    expectDeny(h, answer, 403, 'audience_mismatch');
    expect(record).toMatchObject({ type: 'authorize', reason: 'audience_mismatch', server: 'crm-mcp', principal: 'globex-agent', jti: claimsOf(token).jti });
    expect((await logLineOf(answer.body.request_id)).reason).toBe('audience_mismatch');
  });

  describe('revoked, every kind', () => {
    const revoke = async (target: Record<string, unknown>) => expect((await h.post('/v1/revoke', target, h.operatorToken)).status).toBe(200);

    // In this order: once initech-reader is revoked it gets no token, so the tenant case uses initech-agent.
    it.each([
      ['its jti', 'token_revoked', 'initech-reader', (t: string) => ({ jti: claimsOf(t).jti, force: true })],
      ['its session', 'session_revoked', 'initech-reader', (t: string) => ({ session: claimsOf(t).sid })],
      ['its principal', 'principal_revoked', 'initech-reader', () => ({ principal: 'initech/initech-reader' })],
      ['its tenant', 'tenant_revoked', 'initech-agent', () => ({ tenant: 'initech' })],
    ])('records a token revoked by %s as %s in its tenant\'s stream', async (_name, reason, principal, target) => {
      const token = await h.token(principal, 'crm-mcp');
      await revoke(target(token));
      const { record, answer } = await recordedOnlyIn('initech', () => authorize(token, 'crm-mcp', 'query_crm', 'initech/x'));
      expectDeny(h, answer, 403, reason);
      expect(record).toMatchObject({ type: 'authorize', decision: 'deny', reason, principal, jti: claimsOf(token).jti });
      expect((await logLineOf(answer.body.request_id)).reason).toBe(reason);
      if (reason === 'tenant_revoked') expect((await h.post('/v1/restore', { tenant: 'initech' }, h.operatorToken)).status).toBe(200);
    });
  });

  describe('at every other endpoint that takes a token', () => {
    it('records an expired token at /v1/manifest (type token, endpoint named)', async () => {
      const token = await h.token('acme-reader', 'crm-mcp', { expires_in: '1' });
      clock.advance(1000 + 5_000 + 1000);
      const { record, answer } = await recordedOnlyIn('acme', () => h.post('/v1/manifest', { token }, h.serverKeys['crm-mcp']));
      expect([answer.status, answer.body.reason]).toEqual([403, 'token_expired']);
      expect(record).toMatchObject({ type: 'token', decision: 'deny', reason: 'token_expired', endpoint: '/v1/manifest', server: 'crm-mcp', principal: 'acme-reader' });
      expect((await logLineOf(answer.body.request_id)).reason).toBe('token_expired');
    });

    it('records a revoked token at /v1/manifest', async () => {
      const token = await h.token('acme-reader', 'crm-mcp');
      await h.post('/v1/revoke', { jti: claimsOf(token).jti, force: true }, h.operatorToken);
      const { record, answer } = await recordedOnlyIn('acme', () => h.post('/v1/manifest', { token }, h.serverKeys['crm-mcp']));
      expect([answer.status, answer.body.reason]).toEqual([403, 'token_revoked']);
      expect(record).toMatchObject({ type: 'token', reason: 'token_revoked', endpoint: '/v1/manifest', jti: claimsOf(token).jti });
    });

    it('records introspection of another server\'s token and of a revoked one (active: false)', async () => {
      const mine = await h.token('acme-agent', 'mail-mcp');
      const asked = await recordedOnlyIn('acme', () => h.post('/v1/token/introspect', { token: mine }, h.serverKeys['crm-mcp']));
      expect([asked.answer.status, asked.answer.body]).toEqual([200, { active: false }]);
      expect(asked.record).toMatchObject({ type: 'token', reason: 'audience_mismatch', endpoint: '/v1/token/introspect', server: 'crm-mcp', principal: 'acme-agent' });
      expect((await logLineOf(asked.answer.headers.get('x-request-id')!)).reason).toBe('audience_mismatch');

      const revoked = await h.token('acme-agent', 'crm-mcp');
      await h.post('/v1/revoke', { jti: claimsOf(revoked).jti, force: true }, h.operatorToken);
      const again = await recordedOnlyIn('acme', () => h.post('/v1/token/introspect', { token: revoked }, h.serverKeys['crm-mcp']));
      expect(again.answer.body).toEqual({ active: false });
      expect(again.record).toMatchObject({ reason: 'token_revoked', endpoint: '/v1/token/introspect' });
    });

    it('records a refresh (token exchange) of an expired and of a revoked token', async () => {
      const exchange = (token: string) => h.post('/v1/token', { grant_type: EXCHANGE, subject_token: token, subject_token_type: ACCESS_TOKEN, client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
      const expiring = await h.token('acme-agent', 'crm-mcp', { expires_in: '1' });
      clock.advance(1000 + 5_000 + 1000);
      const expired = await recordedOnlyIn('acme', () => exchange(expiring));
      expect([expired.answer.status, expired.answer.body.error]).toEqual([400, 'invalid_grant']);
      expect(expired.record).toMatchObject({ type: 'token', reason: 'token_expired', endpoint: '/v1/token', principal: 'acme-agent' });
      // The log line names the token's own reason, not only the OAuth error code.
      expect((await logLineOf(expired.answer.headers.get('x-request-id')!)).reason).toBe('token_expired');

      const token = await h.token('acme-agent', 'crm-mcp');
      await h.post('/v1/revoke', { session: claimsOf(token).sid }, h.operatorToken);
      const revoked = await recordedOnlyIn('acme', () => exchange(token));
      expect([revoked.answer.status, revoked.answer.body.error]).toEqual([400, 'invalid_grant']);
      expect(revoked.record).toMatchObject({ type: 'token', reason: 'session_revoked', endpoint: '/v1/token', session: claimsOf(token).sid });
    });
  });
});

describe('in the security stream: no verifiable tenant', () => {
  let globexToken: string;
  beforeAll(async () => {
    globexToken = await h.token('globex-agent', 'crm-mcp');
  });

  /** A token claiming tenant globex that is not globex's: the record must be in _security, and globex untouched. */
  async function expectSecurityRecord(token: string, detail: RegExp, reason = 'token_invalid'): Promise<any> {
    const { record, answer } = await recordedOnlyIn(SECURITY_STREAM, () => authorize(token, 'crm-mcp', 'query_crm', 'globex/x'));
    expectDeny(h, answer, 403, reason);
    expect(record).toMatchObject({ tenant: SECURITY_STREAM, type: 'authorize', decision: 'deny', reason, endpoint: '/v1/authorize', server: 'crm-mcp', tool: 'query_crm', token_sha256: sha256Hex(token), call_id: answer.body.call_id });
    expect(record.detail).toMatch(detail);
    // Nothing the token claims is taken over: no principal, session or jti.
    for (const field of ['principal', 'session', 'jti']) expect(record).not.toHaveProperty(field);
    expect((await logLineOf(answer.body.request_id)).reason).toBe(reason);
    return record;
  }

  const edit = (token: string, change: Record<string, unknown>) => {
    const [header, , signature] = token.split('.');
    return `${header}.${b64({ ...claimsOf(token), ...change })}.${signature}`;
  };

  it('records a forged token claiming another tenant (acme\'s signature, tid globex) in _security, never in globex', async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    await expectSecurityRecord(edit(acme, { tid: 'globex', sub: 'globex-agent' }), /signature/);
  });

  it('records alg "none" claiming globex', async () => {
    const header = { ...headerOf(globexToken), alg: 'none' };
    await expectSecurityRecord(`${b64(header)}.${b64(claimsOf(globexToken))}.`, /algorithm|malformed/);
  });

  it('records a truncated token (signature cut short)', async () => {
    await expectSecurityRecord(globexToken.slice(0, -10), /signature|malformed/);
  });

  it.each([
    ['a word', 'garbage'],
    ['random bytes', randomBytes(200).toString('base64url')],
    ['junk segments', 'a.b.c'],
  ])('records garbage (%s)', async (_name, token) => {
    await expectSecurityRecord(token, /malformed/);
  });

  it('records a token signed by a stranger under an unknown kid', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const token = await new SignJWT(claimsOf(globexToken)).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'unknown-kid' }).sign(privateKey);
    await expectSecurityRecord(token, /signing key is unknown/);
  });

  it('records a token signed by another broker (same issuer URL, its own keys)', async () => {
    const foreign = await other.token('globex-agent', 'crm-mcp');
    await expectSecurityRecord(foreign, /signing key is unknown|signature/);
  });

  it('records a wrong server key (server_unauthenticated), with the body token\'s fingerprint and no server', async () => {
    const wrongKey = randomBytes(24).toString('base64url');
    const body = { token: globexToken, tool: 'query_crm', arguments: { path: 'globex/x' } };
    const { record, answer } = await recordedOnlyIn(SECURITY_STREAM, () => h.post('/v1/authorize', body, wrongKey));
    expectDeny(h, answer, 401, 'server_unauthenticated');
    expect(record).toMatchObject({ type: 'authorize', reason: 'server_unauthenticated', endpoint: '/v1/authorize', token_sha256: sha256Hex(globexToken) });
    expect(record).not.toHaveProperty('server');
    expect(JSON.stringify(record)).not.toContain(wrongKey);
    expect((await logLineOf(answer.body.request_id)).reason).toBe('server_unauthenticated');

    const manifest = await recordedOnlyIn(SECURITY_STREAM, () => h.post('/v1/manifest', { token: globexToken }, wrongKey));
    expect(manifest.record).toMatchObject({ type: 'token', reason: 'server_unauthenticated', endpoint: '/v1/manifest' });
    const operator = await recordedOnlyIn(SECURITY_STREAM, () => h.get('/v1/audit?tenant=acme', wrongKey));
    expect(operator.answer.status).toBe(401);
    expect(operator.record).toMatchObject({ reason: 'operator_unauthenticated', endpoint: '/v1/audit' });
  });

  it('records a body too malformed to read (bad_request) with the server', async () => {
    const { record, answer } = await recordedOnlyIn(SECURITY_STREAM, () => h.authorize('crm-mcp', { token: globexToken, tool: 'query_crm', tenant_id: 1 }));
    expectDeny(h, answer, 400, 'bad_request');
    expect(record).toMatchObject({ reason: 'bad_request', server: 'crm-mcp', detail: 'request body is malformed', token_sha256: sha256Hex(globexToken) });
  });

  it('records forged tokens at /v1/manifest, introspection, token exchange and RFC 7009 revocation', async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const forged = edit(acme, { tid: 'globex', sub: 'globex-agent' });
    presented.push(forged);
    const manifest = await recordedOnlyIn(SECURITY_STREAM, () => h.post('/v1/manifest', { token: forged }, h.serverKeys['crm-mcp']));
    expect([manifest.answer.status, manifest.answer.body.reason]).toEqual([403, 'token_invalid']);
    expect(manifest.record).toMatchObject({ type: 'token', endpoint: '/v1/manifest', server: 'crm-mcp', token_sha256: sha256Hex(forged) });

    const introspect = await recordedOnlyIn(SECURITY_STREAM, () => h.post('/v1/token/introspect', { token: forged }, h.serverKeys['crm-mcp']));
    expect(introspect.answer.body).toEqual({ active: false });
    expect(introspect.record).toMatchObject({ endpoint: '/v1/token/introspect', reason: 'token_invalid' });
    expect((await logLineOf(introspect.answer.headers.get('x-request-id')!)).reason).toBe('token_invalid');

    const exchange = await recordedOnlyIn(SECURITY_STREAM, () =>
      h.post('/v1/token', { grant_type: EXCHANGE, subject_token: forged, subject_token_type: ACCESS_TOKEN, client_id: 'globex-agent', client_secret: h.clientSecrets['globex-agent'] }),
    );
    expect([exchange.answer.status, exchange.answer.body.error]).toEqual([400, 'invalid_grant']);
    expect(exchange.record).toMatchObject({ endpoint: '/v1/token', reason: 'token_invalid' });
    expect(exchange.record).not.toHaveProperty('server');

    const revocation = await recordedOnlyIn(SECURITY_STREAM, () => h.post('/v1/token/revoke', { token: forged, client_id: 'globex-agent', client_secret: h.clientSecrets['globex-agent'] }));
    expect(revocation.answer.status).toBe(200);
    expect(revocation.record).toMatchObject({ endpoint: '/v1/token/revoke', reason: 'token_invalid' });
  });
});

describe('the security stream is evidence like a tenant stream', () => {
  it('is searchable, verifiable (API and offline), correlatable', async () => {
    const search = await h.get(`/v1/audit?tenant=${SECURITY_STREAM}&reason=server_unauthenticated`, h.operatorToken);
    expect(search.status).toBe(200);
    expect(search.body.events.length).toBeGreaterThan(0);
    for (const e of search.body.events) expect([e.tenant, e.reason]).toEqual([SECURITY_STREAM, 'server_unauthenticated']);

    const verify = await h.get(`/v1/audit/verify?tenant=${SECURITY_STREAM}`, h.operatorToken);
    expect(verify.body).toMatchObject({ ok: true });
    expect(verify.body.events).toBeGreaterThan(10);
    const checkpoints = await h.get(`/v1/audit/checkpoints?tenant=${SECURITY_STREAM}`, h.operatorToken);
    expect(checkpoints.body.checkpoints.length).toBeGreaterThan(0);
    expect(checkpoints.body.invalid).toBe(0);

    const sample = search.body.events[0];
    const correlate = await h.get(`/v1/audit/correlate?request_id=${sample.request_id}`, h.operatorToken);
    expect(correlate.body.matches).toEqual([expect.objectContaining({ tenant: SECURITY_STREAM, seq: sample.seq })]);
  });

  it('never holds a presented token, nor any part of one (header, claims, signature)', async () => {
    const file = await readFile(join(h.dataDir, 'audit', `${SECURITY_STREAM}.jsonl`), 'utf8');
    expect(file.length).toBeGreaterThan(0);
    const parts = [...presented, ...h.issuedTokens].flatMap((t) => t.split('.')).filter((p) => p.length >= 16);
    expect(parts.length).toBeGreaterThan(20);
    for (const part of parts) {
      for (let i = 0; i + 16 <= part.length; i += 8) expect(file.includes(part.slice(i, i + 16))).toBe(false);
    }
    const extra = presented.filter((t) => t.length >= 16).map((value, i) => ({ label: `presented token #${i}`, value }));
    expect(await findLeaks(h, extra)).toEqual([]);
  });
});

describe('token exchange of a tenant IdP token', () => {
  let idps: Record<string, Idp>;
  let closeIdps: () => Promise<void>;
  let x: Harness;
  const idpClock = manualClock(Date.UTC(2030, 2, 1, 9, 0, 0));
  const now = () => Math.floor(idpClock.now() / 1000);
  const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

  beforeAll(async () => {
    ({ idps, close: closeIdps } = await startIdps(['acme', 'globex']));
    x = await startHarness({
      brokerOptions: { clock: idpClock },
      overrides: (p) => {
        for (const tenant of ['acme', 'globex']) p.tenants[tenant].idp = { issuer: idps[tenant]!.issuer, jwks_uri: idps[tenant]!.jwksUri, audience: 'bulkhead', scope: ['query_crm'] };
      },
    });
    // The IdP's keys are fetched once the first exchange needs them.
    expect((await exchange(await idps.acme!.sign({}, now()))).status).toBe(200);
  });
  afterAll(async () => {
    await x?.close();
    await closeIdps?.();
  });

  const exchange = (subject: string) => x.tokenRequest({ grant_type: EXCHANGE, subject_token: subject, subject_token_type: JWT_TYPE, audience: 'crm-mcp' }, { form: true });

  /** Exactly one record, in `stream`, and no other stream of x moved. */
  async function onlyIn(stream: string, subject: string): Promise<any> {
    const snap = async () => Object.fromEntries(await Promise.all(STREAMS.map(async (s) => [s, await auditEvents(x, s)] as const)));
    const before = await snap();
    const answer = await exchange(subject);
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_grant']);
    const after = await snap();
    for (const s of STREAMS) if (s !== stream) expect({ s, events: after[s] }).toEqual({ s, events: before[s] });
    const added = after[stream]!.slice(before[stream]!.length);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({ type: 'token', decision: 'deny', endpoint: '/v1/token', request_id: answer.headers.get('x-request-id') });
    return added[0];
  }

  it("records an expired IdP token, and one for another audience, in that IdP's tenant's stream", async () => {
    const expired = await onlyIn('acme', await idps.acme!.sign({ iat: now() - 600, exp: now() - 300 }, now()));
    expect(expired).toMatchObject({ reason: 'token_expired', principal: 'alice' });
    const elsewhere = await onlyIn('acme', await idps.acme!.sign({ aud: 'someone-else' }, now()));
    expect(elsewhere).toMatchObject({ reason: 'audience_mismatch', principal: 'alice' });
  });

  it("records an IdP token that acme's IdP did not sign (claiming acme's issuer) in _security, never in acme", async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const forged = await new SignJWT({ iss: idps.acme!.issuer, aud: 'bulkhead', sub: 'alice', iat: now(), exp: now() + 300 }).setProtectedHeader({ alg: 'ES256', kid: 'stranger' }).sign(privateKey);
    const record = await onlyIn(SECURITY_STREAM, forged);
    expect(record).toMatchObject({ reason: 'token_invalid', token_sha256: sha256Hex(forged) });
    for (const field of ['principal', 'session', 'jti']) expect(record).not.toHaveProperty(field);
    // globex's IdP signing a token that claims acme's issuer is a forgery too.
    const crossSigned = await idps.globex!.sign({ iss: idps.acme!.issuer }, now());
    expect(await onlyIn(SECURITY_STREAM, crossSigned)).toMatchObject({ reason: 'token_invalid', token_sha256: sha256Hex(crossSigned) });
  });

  it('records an issuer no tenant has, and a subject token that is no JWT, in _security', async () => {
    const { privateKey } = await generateKeyPair('ES256');
    const stranger = await new SignJWT({ iss: 'https://idp.hooli.example', aud: 'bulkhead', sub: 'alice', exp: now() + 300 }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    expect(await onlyIn(SECURITY_STREAM, stranger)).toMatchObject({ reason: 'token_invalid', detail: 'subject_token issuer is not a tenant identity provider' });
    expect(await onlyIn(SECURITY_STREAM, 'not-a-jwt-at-all-0123456789')).toMatchObject({ reason: 'token_invalid', token_sha256: sha256Hex('not-a-jwt-at-all-0123456789') });
  });
});
