import { createPublicKey, type KeyObject } from 'node:crypto';
import { generateKeyPair, SignJWT, type JWTPayload } from 'jose';
import { BrokerError } from '../../../src/errors';
import type { TokenClaims } from '../../../src/tokens/claims';
import { signedIdentityOf } from '../../../src/tokens/token-rejection';
import { ISSUER, MINUTE, SKEW, tempDir, tokenKit } from './fixtures';

type Kit = Awaited<ReturnType<typeof tokenKit>>;

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function failure(promise: Promise<unknown>): Promise<BrokerError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof BrokerError) return err;
    throw err;
  }
  throw new Error('expected the token to be refused');
}

describe('token issuer and verifier', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let kit: Kit;
  let good: { token: string; claims: TokenClaims };

  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    kit = await tokenKit(dir);
    good = await kit.issuer.issue({ tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm', 'export_report'], ttlMs: 15 * MINUTE });
  });
  afterEach(() => cleanup());

  /** Signs arbitrary claims and header with the broker's real current key. */
  function signWithBrokerKey(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
    const { kid, privateKey } = kit.keyRing.signingKey();
    return new SignJWT(claims as JWTPayload).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid, ...header }).sign(privateKey);
  }

  async function refused(token: string, audience = 'crm-mcp'): Promise<string> {
    const err = await failure(kit.verifier.verify(token, audience));
    // A refusal never quotes the token, any part of it, or its claims.
    for (const part of [token, ...token.split('.')].filter((p) => p.length > 8)) expect(err.message).not.toContain(part);
    expect(err.message).not.toContain(good.claims.jti);
    return err.reason;
  }

  it('round-trips: an issued token verifies to its tenant, principal, session and scope', async () => {
    const header = JSON.parse(Buffer.from(good.token.split('.')[0]!, 'base64url').toString());
    expect(header).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: kit.keyRing.signingKey().kid });
    expect(good.claims).toMatchObject({ iss: ISSUER, sub: 'acme-agent', aud: 'crm-mcp', tid: 'acme', scope: 'query_crm export_report' });
    expect(good.claims.exp - good.claims.iat).toBe(15 * 60);
    const verified = await kit.verifier.verify(good.token, 'crm-mcp');
    expect(verified).toEqual({
      clientId: 'acme/acme-agent',
      tenant: 'acme',
      principal: 'acme-agent',
      session: good.claims.sid,
      jti: good.claims.jti,
      audience: 'crm-mcp',
      scope: ['query_crm', 'export_report'],
      issuedAt: good.claims.iat * 1000,
      sessionStartedAt: good.claims.auth_time * 1000,
      expiresAt: good.claims.exp * 1000,
    });
  });

  it('gives every token a fresh jti and session unless a session is carried over', async () => {
    const again = await kit.issuer.issue({ tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm'], ttlMs: MINUTE });
    expect(again.claims.jti).not.toBe(good.claims.jti);
    expect(again.claims.sid).not.toBe(good.claims.sid);
    const refreshed = await kit.issuer.issue({ tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm'], ttlMs: MINUTE, session: { id: good.claims.sid, startedAt: good.claims.auth_time } });
    expect(refreshed.claims.sid).toBe(good.claims.sid);
    expect(refreshed.claims.auth_time).toBe(good.claims.auth_time);
  });

  it('refuses to issue a token that would outlive the signing key window', async () => {
    await expect(kit.issuer.issue({ tenant: 'acme', principal: 'p', audience: 'crm-mcp', scope: ['query_crm'], ttlMs: 61 * MINUTE })).rejects.toThrow(/lifetime/);
  });

  it('refuses a payload edited to name another tenant, even with the original signature', async () => {
    const [header, payload, signature] = good.token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const forged = [header, b64({ ...claims, tid: 'beta' }), signature].join('.');
    expect(await refused(forged)).toBe('token_invalid');
  });

  it('refuses an unsigned token (alg: none)', async () => {
    const forged = [b64({ alg: 'none', typ: 'at+jwt', kid: kit.keyRing.signingKey().kid }), good.token.split('.')[1], ''].join('.');
    expect(await refused(forged)).toBe('token_invalid');
  });

  it('refuses HS256 tokens "signed" with the public key (algorithm confusion)', async () => {
    const kid = kit.keyRing.signingKey().kid;
    const jwk = kit.keyRing.jwks().keys.find((key) => key.kid === kid)!;
    const publicKey: KeyObject = createPublicKey({ key: { kty: jwk.kty!, crv: jwk.crv!, x: jwk.x! }, format: 'jwk' });
    const candidates = [
      Buffer.from(publicKey.export({ type: 'spki', format: 'pem' }) as string),
      Buffer.from(jwk.x!, 'base64url'),
      Buffer.from(JSON.stringify(jwk)),
    ];
    for (const secret of candidates) {
      const forged = await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(secret);
      expect(await refused(forged)).toBe('token_invalid');
    }
  });

  it('refuses a token signed by a key the broker does not hold', async () => {
    const stranger = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const unknownKid = await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: 'not-a-broker-key' }).sign(stranger.privateKey);
    expect(await refused(unknownKid)).toBe('token_invalid');
    const borrowedKid = await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: kit.keyRing.signingKey().kid }).sign(stranger.privateKey);
    expect(await refused(borrowedKid)).toBe('token_invalid');
    const noKid = await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt' }).sign(kit.keyRing.signingKey().privateKey);
    expect(await refused(noKid)).toBe('token_invalid');
  });

  it('refuses a token of the wrong type (an ID token or plain JWT is not an access token)', async () => {
    expect(await refused(await signWithBrokerKey({ ...good.claims }, { typ: 'JWT' }))).toBe('token_invalid');
    const { kid, privateKey } = kit.keyRing.signingKey();
    const untyped = await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'EdDSA', kid }).sign(privateKey);
    expect(await refused(untyped)).toBe('token_invalid');
  });

  it('refuses a token from another issuer', async () => {
    expect(await refused(await signWithBrokerKey({ ...good.claims, iss: 'https://evil.example' }))).toBe('token_invalid');
  });

  it('refuses missing or ill-typed claims', async () => {
    const { tid: _tid, ...noTenant } = good.claims;
    expect(await refused(await signWithBrokerKey(noTenant))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, tid: 7 }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, scope: ['query_crm'] }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, aud: ['crm-mcp', 'billing-mcp'] }))).toBe('token_invalid');
    // [server id, resource URL] is the one array we sign: anything else is two servers' token, or junk.
    expect(await refused(await signWithBrokerKey({ ...good.claims, aud: ['https://crm.example/mcp', 'crm-mcp'] }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, aud: ['crm-mcp', 'https://crm.example/mcp', 'billing-mcp'] }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, aud: ['crm-mcp'] }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, client_id: 7 }))).toBe('token_invalid');
    expect(await refused(await signWithBrokerKey({ ...good.claims, exp: String(good.claims.exp) }))).toBe('token_invalid');
  });

  it('refuses malformed input', async () => {
    for (const junk of ['', 'abc', 'a.b.c', 'x'.repeat(10_000)]) expect(await refused(junk)).toBe('token_invalid');
  });

  it('refuses a token that is not valid yet', async () => {
    const future = Math.floor(kit.clock.now() / 1000) + 3600;
    expect(await refused(await signWithBrokerKey({ ...good.claims, nbf: future }))).toBe('token_invalid');
  });

  it('answers audience_mismatch for a token presented to another server, cached or not', async () => {
    expect(await refused(good.token, 'billing-mcp')).toBe('audience_mismatch');
    await kit.verifier.verify(good.token, 'crm-mcp'); // now cached
    expect(await refused(good.token, 'billing-mcp')).toBe('audience_mismatch');
  });

  it('expires tokens on time even when they are cached', async () => {
    await kit.verifier.verify(good.token, 'crm-mcp'); // cached
    kit.clock.set(good.claims.exp * 1000 + SKEW - 1000);
    await expect(kit.verifier.verify(good.token, 'crm-mcp')).resolves.toMatchObject({ jti: good.claims.jti });
    kit.clock.set(good.claims.exp * 1000 + SKEW);
    expect(await refused(good.token)).toBe('token_expired');
  });

  describe('who a refusal speaks for (where it is recorded)', () => {
    const identityOf = async (token: string, audience = 'crm-mcp') => signedIdentityOf(await failure(kit.verifier.verify(token, audience)));
    const acme = () => ({ tenant: 'acme', principal: 'acme-agent', session: good.claims.sid, jti: good.claims.jti });

    it('names the signed tenant of an expired, other-server or not-yet-valid token, cached or not', async () => {
      expect(await identityOf(good.token, 'billing-mcp')).toEqual(acme());
      expect(await identityOf(await signWithBrokerKey({ ...good.claims, nbf: Math.floor(kit.clock.now() / 1000) + 3600 }))).toEqual(acme());
      expect(await identityOf(await signWithBrokerKey({ ...good.claims }, { typ: 'JWT' }))).toEqual(acme());
      await kit.verifier.verify(good.token, 'crm-mcp'); // cached
      expect(await identityOf(good.token, 'billing-mcp')).toEqual(acme());
      kit.clock.set(good.claims.exp * 1000 + SKEW);
      expect(await identityOf(good.token)).toEqual(acme());
    });

    it('names nobody when the signature did not verify, whatever the token claims', async () => {
      const [header, payload, signature] = good.token.split('.');
      const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
      expect(await identityOf([header, b64({ ...claims, tid: 'beta' }), signature].join('.'))).toBeUndefined();
      expect(await identityOf([b64({ alg: 'none', typ: 'at+jwt', kid: kit.keyRing.signingKey().kid }), payload, ''].join('.'))).toBeUndefined();
      expect(await identityOf(good.token.slice(0, -4))).toBeUndefined();
      const stranger = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
      expect(await identityOf(await new SignJWT({ ...good.claims }).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: kit.keyRing.signingKey().kid }).sign(stranger.privateKey))).toBeUndefined();
      // An expired claim in a forged token is still forged: the signature is checked before the lifetime.
      kit.clock.set(good.claims.exp * 1000 + SKEW);
      expect(await identityOf([header, b64({ ...claims, tid: 'beta' }), signature].join('.'))).toBeUndefined();
      for (const junk of ['', 'abc', 'a.b.c']) expect(await identityOf(junk)).toBeUndefined();
    });

    it('names nobody for a signed token that lacks a tenant, principal, session or jti', async () => {
      const { tid: _tid, ...noTenant } = good.claims;
      expect(await identityOf(await signWithBrokerKey(noTenant))).toBeUndefined();
      expect(await identityOf(await signWithBrokerKey({ ...good.claims, tid: 7 }))).toBeUndefined();
    });
  });

  it('expires tokens that were never cached', async () => {
    kit.clock.set(good.claims.exp * 1000 + SKEW);
    expect(await refused(good.token)).toBe('token_expired');
  });

  it('keeps answering correctly when the cache is full (least recently used evicted)', async () => {
    const small = await tokenKit(dir, { masterKey: kit.masterKey, cacheSize: 2 });
    const tokens = await Promise.all(
      [1, 2, 3, 4].map(() => small.issuer.issue({ tenant: 'acme', principal: 'acme-agent', audience: 'crm-mcp', scope: ['query_crm'], ttlMs: MINUTE })),
    );
    for (let round = 0; round < 2; round++) {
      for (const { token, claims } of tokens) await expect(small.verifier.verify(token, 'crm-mcp')).resolves.toMatchObject({ jti: claims.jti });
    }
    small.clock.advance(MINUTE + SKEW);
    for (const { token } of tokens) await expect(small.verifier.verify(token, 'crm-mcp')).rejects.toMatchObject({ reason: 'token_expired' });
  });

  it('hands out verified tokens that callers cannot modify for the next caller', async () => {
    const first = await kit.verifier.verify(good.token, 'crm-mcp');
    expect(() => (first.scope as string[]).push('send_email')).toThrow();
    expect(() => Object.assign(first, { tenant: 'beta' })).toThrow();
    expect((await kit.verifier.verify(good.token, 'crm-mcp')).tenant).toBe('acme');
  });
});
