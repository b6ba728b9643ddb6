import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type KeyLike } from 'jose';
import { BrokerError } from '../../../src/errors';
import { OAuthError } from '../../../src/tokens/oauth-error';
import { createTokenService, type TokenService } from '../../../src/tokens/token-service';
import { revocationStub, tempDir, testPolicy, tokenKit } from './fixtures';

/**
 * Token exchange with tenant IdP JWTs, against a real JWKS served over HTTP on 127.0.0.1 and fetched by
 * the default remote key resolver. The tenant must come only from the verified issuer.
 */

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACME_ISSUER = 'https://idp.acme.example';
const BETA_ISSUER = 'https://idp.beta.example';

type Kit = Awaited<ReturnType<typeof tokenKit>>;
interface IdpKey {
  kid: string;
  privateKey: KeyLike;
  publicJwk: JWK;
}

async function rsaKey(kid: string): Promise<IdpKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

async function oauthFailure(promise: Promise<unknown>): Promise<OAuthError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof OAuthError) return err;
    throw err;
  }
  throw new Error('expected an OAuth error');
}

describe('token exchange with a tenant IdP token', () => {
  let server: Server;
  let baseUrl: string;
  let acmeKey: IdpKey;
  let betaKey: IdpKey;
  let strangerKey: IdpKey;
  let cleanup: () => Promise<void>;
  let kit: Kit;
  let service: TokenService;
  let revocations: ReturnType<typeof revocationStub>;

  beforeAll(async () => {
    [acmeKey, betaKey] = await Promise.all([rsaKey('acme-1'), rsaKey('beta-1')]);
    strangerKey = await rsaKey('acme-1'); // same kid as acme's real key, different key
    server = createServer((req, res) => {
      const key = req.url === '/acme/jwks' ? acmeKey : req.url === '/beta/jwks' ? betaKey : undefined;
      res.writeHead(key ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(key ? { keys: [key.publicJwk] } : {}));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  beforeEach(async () => {
    const temp = await tempDir();
    cleanup = temp.cleanup;
    kit = await tokenKit(temp.dir);
    revocations = revocationStub();
    const policy = testPolicy({
      acme: { issuer: ACME_ISSUER, jwks_uri: `${baseUrl}/acme/jwks`, audience: 'bulkhead', scope: ['query_crm'] },
      beta: { issuer: BETA_ISSUER, jwks_uri: `${baseUrl}/beta/jwks`, audience: 'bulkhead-beta', principal_claim: 'email' },
    });
    service = createTokenService({ policy, issuer: kit.issuer, verifier: kit.verifier, revocations, clock: kit.clock });
  });
  afterEach(() => cleanup());

  function idpToken(key: IdpKey, claims: JWTPayload, alg = 'RS256'): Promise<string> {
    const now = Math.floor(kit.clock.now() / 1000);
    return new SignJWT({ iss: ACME_ISSUER, aud: 'bulkhead', sub: 'alice', iat: now, exp: now + 300, ...claims })
      .setProtectedHeader({ alg, kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
  }

  const exchange = (subject_token: string, extra: Record<string, unknown> = {}) =>
    service.grant({ grant_type: EXCHANGE, subject_token, subject_token_type: JWT_TYPE, audience: 'crm-mcp', ...extra });

  it('maps the verified issuer to its tenant, the principal claim to the principal, and idp.scope to the scope', async () => {
    const answer = await exchange(await idpToken(acmeKey, {}));
    expect(answer).toMatchObject({ token_type: 'Bearer', scope: 'query_crm', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' });
    expect(await kit.verifier.verify(answer.access_token, 'crm-mcp')).toMatchObject({ tenant: 'acme', principal: 'alice', scope: ['query_crm'] });

    const beta = await exchange(await idpToken(betaKey, { iss: BETA_ISSUER, aud: 'bulkhead-beta', email: 'bob@beta.example' }));
    expect(await kit.verifier.verify(beta.access_token, 'crm-mcp')).toMatchObject({ tenant: 'beta', principal: 'bob@beta.example', scope: ['query_crm', 'send_email'] });
  });

  it('never yields a tenant-B token from tenant A\'s IdP, whatever the token body claims', async () => {
    const claimsBeta = await exchange(await idpToken(acmeKey, { tid: 'beta', tenant: 'beta', tenant_id: 'beta' }), { tenant: 'beta', tid: 'beta' });
    expect((await kit.verifier.verify(claimsBeta.access_token, 'crm-mcp')).tenant).toBe('acme');

    // Signed by acme's IdP but claiming beta's issuer: checked against beta's keys, and refused.
    const impersonation = await oauthFailure(exchange(await idpToken(acmeKey, { iss: BETA_ISSUER, aud: 'bulkhead-beta', email: 'mallory@acme.example' })));
    expect(impersonation.error).toBe('invalid_grant');
  });

  it('refuses an IdP token signed by the wrong key, even one that borrows the right kid', async () => {
    expect((await oauthFailure(exchange(await idpToken(strangerKey, {})))).error).toBe('invalid_grant');
  });

  it('refuses an HMAC token keyed with the IdP\'s public key', async () => {
    const hmac = await idpToken({ ...acmeKey, privateKey: new TextEncoder().encode(JSON.stringify(acmeKey.publicJwk)) as unknown as KeyLike }, {}, 'HS256');
    expect((await oauthFailure(exchange(hmac))).error).toBe('invalid_grant');
  });

  it('refuses unknown issuers, the wrong IdP audience, expired tokens and a missing principal claim', async () => {
    for (const claims of [{ iss: 'https://idp.unknown.example' }, { aud: 'someone-else' }, { exp: Math.floor(kit.clock.now() / 1000) - 3600 }, { sub: undefined }]) {
      const failure = await oauthFailure(exchange(await idpToken(acmeKey, claims)));
      expect(failure).toMatchObject({ error: 'invalid_grant', status: 400 });
    }
  });

  it('narrows to the requested scope and refuses anything beyond idp.scope', async () => {
    expect((await oauthFailure(exchange(await idpToken(acmeKey, {}), { scope: 'query_crm export_report' }))).error).toBe('invalid_scope');
    expect((await oauthFailure(exchange(await idpToken(acmeKey, {}), { audience: undefined }))).error).toBe('invalid_target');
  });

  it('refuses a revoked tenant or principal', async () => {
    revocations.revoke({ kind: 'principal', tenant: 'acme', principal: 'alice' });
    expect((await oauthFailure(exchange(await idpToken(acmeKey, {})))).error).toBe('invalid_grant');
    await expect(exchange(await idpToken(acmeKey, { sub: 'carol' }))).resolves.toMatchObject({ scope: 'query_crm' });
    revocations.revoke({ kind: 'tenant', tenant: 'acme' });
    expect((await oauthFailure(exchange(await idpToken(acmeKey, { sub: 'carol' })))).error).toBe('invalid_grant');
  });

  it('fails closed as upstream_unavailable, not as a client error, when the IdP keys cannot be fetched', async () => {
    const policy = testPolicy({ acme: { issuer: ACME_ISSUER, jwks_uri: `${baseUrl}/missing/jwks`, audience: 'bulkhead' } });
    const broken = createTokenService({ policy, issuer: kit.issuer, verifier: kit.verifier, revocations, clock: kit.clock });
    const failure = await broken
      .grant({ grant_type: EXCHANGE, subject_token: await idpToken(acmeKey, {}), subject_token_type: JWT_TYPE, audience: 'crm-mcp' })
      .catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(BrokerError);
    expect((failure as BrokerError).reason).toBe('upstream_unavailable');
  });
});
