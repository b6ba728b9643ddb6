import { createPublicKey, createHmac, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { manualClock } from '../../src/clock';
import { startHarness, type Harness } from '../support/broker-harness';
import { SECURITY_STREAM } from '../../src/audit/security-stream';
import { allAudit, auditEvents, callId, claimsOf, expectAllow, expectDeny, expectNoAllowAnywhere, headerOf } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * Tokens the broker did not issue, or no longer honours: expired, edited, unsigned, HMAC-signed with the
 * public key, signed by a stranger's key under a borrowed kid, or issued by another broker instance.
 * Every one is denied before a tenant is known, so no tenant's audit stream moves at all.
 */

const clock = manualClock(Date.parse('2030-01-01T00:00:00Z'));
let h: Harness;
let other: Harness;

beforeAll(async () => {
  [h, other] = await Promise.all([startHarness({ brokerOptions: { clock } }), startHarness({ brokerOptions: { clock } })]);
});

afterAll(async () => {
  await Promise.all([h?.close(), other?.close()]);
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Denies `token` on crm-mcp with token_invalid (or `reason`), and proves no tenant's audit stream moved:
 * the refusal is in the broker's security stream (token-denies.test.ts checks its content).
 */
async function expectRejected(token: string, reason = 'token_invalid', status = 403): Promise<void> {
  const before = await allAudit(h);
  const id = callId('forged');
  const answer = await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'globex/x' }, call_id: id });
  expectDeny(h, answer, status, reason);
  await expectNoAllowAnywhere(h, [id], before);
  expect(await allAudit(h)).toEqual(before);
  if (status === 403) expect((await auditEvents(h, SECURITY_STREAM)).filter((e) => e.call_id === id).map((e) => e.reason)).toEqual([reason]);
}

describe('expired tokens', () => {
  it('denies replay of a token after it expires (token_expired), though it was allowed before', async () => {
    const token = await h.token('acme-agent', 'crm-mcp', { expires_in: '1' });
    const claims = claimsOf(token);
    expect(claims.exp - claims.iat).toBe(1);
    expectAllow(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');

    // Past exp and past the leeway for the broker's own tokens (token_clock_skew, default 5 s). Its
    // signature verified: the deny is in acme's stream, and in no other.
    clock.advance(1000 + 5_000 + 1000);
    const before = await allAudit(h);
    const id = callId('expired');
    expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'token_expired');
    await expectNoAllowAnywhere(h, [id], before, 'acme');
    expect((await auditEvents(h, 'acme')).filter((e) => e.call_id === id).map((e) => [e.decision, e.reason, e.jti])).toEqual([['deny', 'token_expired', claims.jti]]);

    const refresh = await h.post('/v1/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: token, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
    expect([refresh.status, refresh.body.error]).toEqual([400, 'invalid_grant']);
    expect(refresh.body).not.toHaveProperty('access_token');
  });

  it('denies a token whose exp was pushed forward by editing it (token_invalid)', async () => {
    const token = await h.token('acme-agent', 'crm-mcp', { expires_in: '1' });
    clock.advance(60_000);
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    await expectRejected(`${header}.${b64({ ...claims, exp: claims.exp + 3600 })}.${signature}`);
  });
});

describe('edited and unsigned tokens', () => {
  let acme: string;
  beforeAll(async () => {
    acme = await h.token('acme-agent', 'crm-mcp');
    expectAllow(h, await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/x' } }), 'acme');
  });

  const edit = (token: string, change: Record<string, unknown>) => {
    const [header, , signature] = token.split('.');
    return `${header}.${b64({ ...claimsOf(token), ...change })}.${signature}`;
  };

  it.each([
    ['tid swapped to globex', { tid: 'globex' }],
    ['sub swapped to a globex principal', { tid: 'globex', sub: 'globex-agent' }],
    ['scope widened', { scope: 'query_crm export_report send_email ledger' }],
    ['aud swapped to mail-mcp', { aud: 'mail-mcp' }],
    ['sid swapped', { sid: 'another-session' }],
  ])("denies acme's token with %s, original signature kept (token_invalid)", async (_name, change) => {
    await expectRejected(edit(acme, change));
  });

  it('denies alg "none" with a real kid and globex claims (token_invalid)', async () => {
    const header = { ...headerOf(acme), alg: 'none' };
    const payload = { ...claimsOf(acme), tid: 'globex', sub: 'globex-agent' };
    await expectRejected(`${b64(header)}.${b64(payload)}.`);
    await expectRejected(`${b64({ ...header, alg: 'None' })}.${b64(payload)}.`);
    await expectRejected(`${b64(header)}.${b64(payload)}`);
  });

  it("denies HS256 tokens keyed with the broker's own public key from the JWKS (token_invalid)", async () => {
    const jwks = (await h.get('/.well-known/jwks.json')).body;
    const jwk = jwks.keys.find((k: any) => k.kid === headerOf(acme).kid);
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
    const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
    const keyForms: Array<[string, Buffer]> = [
      ['raw public key bytes', Buffer.from(jwk.x, 'base64url')],
      ['the JWK x value', Buffer.from(jwk.x)],
      ['the JWK as JSON', Buffer.from(JSON.stringify(jwk))],
      ['the SPKI PEM', Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string)],
      ['the SPKI DER', publicKey.export({ type: 'spki', format: 'der' }) as Buffer],
    ];
    for (const [, key] of keyForms) {
      const signingInput = `${b64({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })}.${b64({ ...claimsOf(acme), tid: 'globex', sub: 'globex-agent' })}`;
      const signature = createHmac('sha256', key).update(signingInput).digest('base64url');
      await expectRejected(`${signingInput}.${signature}`);
    }
  });

  it('denies a token signed by a stranger under an unknown kid, and under a kid copied from the JWKS (token_invalid)', async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const jwks = (await h.get('/.well-known/jwks.json')).body;
    const claims = { ...claimsOf(acme), tid: 'globex', sub: 'globex-agent', jti: 'forged' };
    const sign = (kid: string) => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid }).sign(privateKey);
    await expectRejected(await sign('unknown-kid'));
    expect(jwks.keys.length).toBeGreaterThanOrEqual(2);
    for (const key of jwks.keys) await expectRejected(await sign(key.kid));
  });

  it('denies a token that embeds its own key in the header (jwk / jku / x5u) (token_invalid)', async () => {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const claims = { ...claimsOf(acme), tid: 'globex', sub: 'globex-agent' };
    const jwk = await exportJWK(publicKey);
    await expectRejected(await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', jwk }).sign(privateKey));
    await expectRejected(await new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: headerOf(acme).kid, jku: 'http://127.0.0.1:1/jwks.json' }).sign(privateKey));
  });

  it.each([
    ['a word', 'garbage'],
    ['three empty segments', '..'],
    ['three junk segments', 'a.b.c'],
    ['a JWE-shaped token', 'a.b.c.d.e'],
    ['a token with an extra segment', 'x.y.z.w'],
    ['base64 of JSON without signature', `${b64({ alg: 'EdDSA' })}.${b64({ tid: 'globex' })}`],
    ['random bytes', randomBytes(300).toString('base64url')],
    ['a header that is not JSON', `${Buffer.from('{not json').toString('base64url')}.${b64({ tid: 'globex' })}.c2ln`],
  ])('denies %s as a token (token_invalid)', async (_name, token) => {
    await expectRejected(token);
  });

  it('denies an empty or oversized token as a malformed request (bad_request)', async () => {
    await expectRejected('', 'bad_request', 400);
    await expectRejected('a'.repeat(9000), 'bad_request', 400);
  });
});

describe('two broker instances', () => {
  it('denies a token from one broker instance at another, in both directions (token_invalid)', async () => {
    const foreign = await other.token('globex-agent', 'crm-mcp');
    expectAllow(other, await other.authorize('crm-mcp', { token: foreign, tool: 'query_crm', arguments: { path: 'globex/x' } }), 'globex');
    // Same issuer URL, same server ids, same tenants: only the signing keys differ.
    expect(claimsOf(foreign).iss).toBe(claimsOf(await h.token('globex-agent', 'crm-mcp')).iss);
    await expectRejected(foreign);

    const ours = await h.token('acme-agent', 'crm-mcp');
    const before = await allAudit(other);
    expectDeny(other, await other.authorize('crm-mcp', { token: ours, tool: 'query_crm', arguments: { path: 'acme/x' } }), 403, 'token_invalid');
    expect(await allAudit(other)).toEqual(before);
  });

  it("refuses to exchange another instance's token for one of ours (invalid_grant)", async () => {
    const foreign = await other.token('acme-agent', 'crm-mcp');
    const answer = await h.post('/v1/token', { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: foreign, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', client_id: 'acme-agent', client_secret: h.clientSecrets['acme-agent'] });
    expect([answer.status, answer.body.error]).toEqual([400, 'invalid_grant']);
    expect(answer.body).not.toHaveProperty('access_token');
  });
});

describe('secrets', () => {
  it("leaks none of either instance's secrets or tokens into logs, data dirs, responses or metrics", async () => {
    // Each instance saw the other's tokens only in request bodies, which must not reach its logs or answers.
    const of = (x: Harness, who: string) => [
      ...x.secrets().map((value, i) => ({ label: `${who} secret #${i}`, value })),
      ...x.issuedTokens.map((value, i) => ({ label: `${who} token #${i}`, value })),
    ];
    expect(await findLeaks(h, of(other, 'other instance'))).toEqual([]);
    expect(await findLeaks(other, of(h, 'first instance'))).toEqual([]);
  });
});
