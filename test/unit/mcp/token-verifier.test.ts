import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import { InvalidTokenError, ServerError } from '@modelcontextprotocol/sdk/server/auth/errors.js';
import { manualClock } from '../../../src/clock';
import { createBulkheadTokenVerifier } from '../../../src/mcp/token-verifier';

/**
 * The MCP-side verifier against a real HTTP JWKS endpoint (a stand-in broker on loopback that serves
 * /.well-known/jwks.json and RFC 8414 metadata and counts how often each is fetched).
 */

const ISSUER = 'https://bulkhead.example';

interface Key {
  kid: string;
  privateKey: KeyLike;
  jwk: JWK;
}

async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' } };
}

function sign(key: Key, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: ISSUER, sub: 'acme-agent', aud: 'crm-mcp', tid: 'acme', sid: 'sess-1', jti: `jti-${Math.random()}`, scope: 'query_crm export_report', iat: now, nbf: now, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid: key.kid, ...header })
    .sign(key.privateKey);
}

describe('Bulkhead token verifier for MCP servers (OAuthTokenVerifier)', () => {
  let server: Server;
  let url: string;
  let published: Key[];
  const fetches = { jwks: 0, metadata: 0 };

  beforeEach(async () => {
    published = [await newKey('k1')];
    fetches.jwks = 0;
    fetches.metadata = 0;
    server = createServer((req, res) => {
      if (req.url === '/.well-known/jwks.json') {
        fetches.jwks++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
      } else if (req.url === '/.well-known/oauth-authorization-server') {
        fetches.metadata++;
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: ISSUER }));
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  });

  const verifier = (options: { jwksCooldownMs?: number } = {}) => createBulkheadTokenVerifier({ brokerUrl: url, serverId: 'crm-mcp', ...options });

  async function refusal(promise: Promise<unknown>): Promise<Error> {
    try {
      await promise;
    } catch (err) {
      return err as Error;
    }
    throw new Error('expected the token to be refused');
  }

  it('verifies a token for this server into AuthInfo carrying tenant, principal and session', async () => {
    const token = await sign(published[0]!);
    const info = await verifier().verifyAccessToken(token);
    expect(info).toMatchObject({ token, clientId: 'acme-agent', scopes: ['query_crm', 'export_report'], extra: { bulkhead: { tenant: 'acme', principal: 'acme-agent', session: 'sess-1' } } });
    expect(typeof info.expiresAt).toBe('number');
  });

  it("refuses a token for another server: the audience is checked, not only the signature", async () => {
    const err = await refusal(verifier().verifyAccessToken(await sign(published[0]!, { aud: 'mail-mcp' })));
    expect(err).toBeInstanceOf(InvalidTokenError);
    expect(err.message).toBe('token was issued for a different server');
  });

  it('refuses a token from another issuer, of another type, expired, or unsigned', async () => {
    const v = verifier();
    const key = published[0]!;
    const now = Math.floor(Date.now() / 1000);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: 'k1' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: 'crm-mcp' })).toString('base64url')}.`;
    for (const token of [await sign(key, { iss: 'https://evil.example' }), await sign(key, {}, { typ: 'JWT' }), await sign(key, { exp: now - 3600, iat: now - 7200, nbf: now - 7200 }), unsigned]) {
      const err = await refusal(v.verifyAccessToken(token));
      expect(err).toBeInstanceOf(InvalidTokenError);
      for (const part of token.split('.').filter((p) => p.length > 8)) expect(err.message).not.toContain(part);
    }
  });

  it('refetches the JWKS when a token names an unknown kid (after rotation), and caches it otherwise', async () => {
    const v = verifier({ jwksCooldownMs: 0 });
    await v.verifyAccessToken(await sign(published[0]!));
    await v.verifyAccessToken(await sign(published[0]!));
    expect(fetches.jwks).toBe(1);

    const rotated = await newKey('k2');
    published = [rotated, ...published];
    await v.verifyAccessToken(await sign(rotated));
    expect(fetches.jwks).toBe(2);
  });

  it('discovers the issuer once, shared by concurrent first requests', async () => {
    const v = verifier();
    const tokens = await Promise.all([1, 2, 3, 4].map(() => sign(published[0]!)));
    await Promise.all(tokens.map((t) => v.verifyAccessToken(t)));
    expect(fetches.metadata).toBe(1);
    expect(await v.issuer()).toBe(ISSUER);
  });

  it('refuses (server error, not a pass) when the keys cannot be fetched', async () => {
    const token = await sign(published[0]!);
    const dead = createBulkheadTokenVerifier({ brokerUrl: 'http://127.0.0.1:9', serverId: 'crm-mcp', issuer: ISSUER, timeoutMs: 500 });
    expect(await refusal(dead.verifyAccessToken(token))).toBeInstanceOf(ServerError);
  });

  describe('verified-token cache (saves the EdDSA verify; revocation stays with the broker)', () => {
    it('remembers a token by its hash, never its claims: a re-signed or tampered twin is verified on its own and refused', async () => {
      const v = verifier();
      const token = await sign(published[0]!, { jti: 'same-jti' });
      await v.verifyAccessToken(token);
      expect(v.cacheSize()).toBe(1);
      const [header, payload, signature] = token.split('.');
      const tampered = `${header}.${payload}.${signature!.slice(0, -4)}${signature!.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      expect(await refusal(v.verifyAccessToken(tampered))).toBeInstanceOf(InvalidTokenError);
      const otherKey = await newKey('k1'); // same kid, a key the broker never published
      expect(await refusal(v.verifyAccessToken(await sign(otherKey, { jti: 'same-jti' })))).toBeInstanceOf(InvalidTokenError);
      expect(v.cacheSize()).toBe(1);
    });

    it('stops serving a remembered token at its exp, and after forget()', async () => {
      const clock = manualClock();
      const v = createBulkheadTokenVerifier({ brokerUrl: url, serverId: 'crm-mcp', clock, clockToleranceSeconds: 0 });
      const now = Math.floor(clock.now() / 1000);
      const token = await sign(published[0]!, { iat: now, nbf: now, exp: now + 60 });
      await v.verifyAccessToken(token);
      clock.advance(61_000);
      expect((await refusal(v.verifyAccessToken(token))).message).toBe('token has expired');
      expect(v.cacheSize()).toBe(0);

      const live = await sign(published[0]!);
      await v.verifyAccessToken(live);
      expect(v.cacheSize()).toBe(1);
      v.forget(live);
      expect(v.cacheSize()).toBe(0);
    });

    it('is bounded: the oldest entry goes first, and 0 disables it', async () => {
      const v = createBulkheadTokenVerifier({ brokerUrl: url, serverId: 'crm-mcp', cacheEntries: 2 });
      for (let i = 0; i < 5; i++) await v.verifyAccessToken(await sign(published[0]!));
      expect(v.cacheSize()).toBe(2);
      const off = createBulkheadTokenVerifier({ brokerUrl: url, serverId: 'crm-mcp', cacheEntries: 0 });
      await off.verifyAccessToken(await sign(published[0]!));
      expect(off.cacheSize()).toBe(0);
    });
  });
});
