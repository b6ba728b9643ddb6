import { createLocalJWKSet, exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import { manualClock } from '../../../src/clock';
import { createIdpLogin, IdpLoginError, type IdpWithLogin } from '../../../src/oauth/idp-login';

/**
 * The broker's own OIDC leg: the ID token must come from the tenant the login was started for —
 * that tenant's pinned issuer, signed by that tenant's keys, for the broker's client id there, with
 * this login's nonce. Each variant below is a token a neighbouring tenant (or an attacker) could
 * actually hold; each is refused as `invalid`, and the principal is never read from it.
 */

const NOW = 1_900_000_000_000;

async function tenantIdp(name: string) {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: `${name}-key`, alg: 'ES256' };
  const settings: IdpWithLogin = {
    issuer: `https://sso.${name}.example`,
    jwks_uri: `https://sso.${name}.example/jwks`,
    audience: 'bulkhead',
    principal_claim: 'sub',
    login: { client_id: 'bulkhead', authorization_endpoint: `https://sso.${name}.example/auth`, token_endpoint: `https://sso.${name}.example/token`, scope: 'openid', domains: [] },
  };
  return { settings, privateKey, keys: createLocalJWKSet({ keys: [jwk] }), kid: jwk.kid! };
}

describe('ID token verification on the IdP leg of /authorize', () => {
  let acme: Awaited<ReturnType<typeof tenantIdp>>;
  let globex: Awaited<ReturnType<typeof tenantIdp>>;
  let login: ReturnType<typeof createIdpLogin>;

  beforeAll(async () => {
    acme = await tenantIdp('acme');
    globex = await tenantIdp('globex');
    const keys = { acme: acme.keys, globex: globex.keys } as const;
    login = createIdpLogin({ clock: manualClock(NOW), keysFor: (tenant) => keys[tenant as keyof typeof keys], limits: { timeoutMs: 1000, maxBytes: 65536 }, clockSkewMs: 5000 });
  });

  const sign = (claims: Record<string, unknown>, key: KeyLike, kid: string, alg = 'ES256') =>
    new SignJWT(claims).setProtectedHeader({ alg, kid }).setIssuedAt(NOW / 1000).setExpirationTime(NOW / 1000 + 300).sign(key);
  const acmeClaims = { iss: 'https://sso.acme.example', aud: 'bulkhead', sub: 'alice@acme.example', nonce: 'n-1' };
  async function refusal(token: string, nonce = 'n-1'): Promise<string> {
    try {
      await login.verifyIdToken('acme', acme.settings, token, nonce);
    } catch (err) {
      if (err instanceof IdpLoginError) return err.kind;
      throw err;
    }
    throw new Error('expected the ID token to be refused');
  }

  it('accepts acme\'s own ID token and takes the principal from it', async () => {
    expect(await login.verifyIdToken('acme', acme.settings, await sign(acmeClaims, acme.privateKey, acme.kid), 'n-1')).toBe('alice@acme.example');
  });

  it('refuses globex\'s genuine ID token on an acme login, whatever it claims', async () => {
    const globexClaims = { ...acmeClaims, iss: 'https://sso.globex.example', sub: 'bob@globex.example' };
    expect(await refusal(await sign(globexClaims, globex.privateKey, globex.kid))).toBe('invalid');
    // Claiming acme's issuer does not help: the signature is globex's, and acme's keys are the only ones asked.
    expect(await refusal(await sign(acmeClaims, globex.privateKey, globex.kid))).toBe('invalid');
    expect(await refusal(await sign(acmeClaims, globex.privateKey, acme.kid))).toBe('invalid');
    // A tid claim means nothing to the broker.
    expect(await refusal(await sign({ ...globexClaims, tid: 'acme' }, globex.privateKey, globex.kid))).toBe('invalid');
  });

  it('refuses another login\'s token (nonce), another client\'s token (aud, azp), and an expired one', async () => {
    expect(await refusal(await sign({ ...acmeClaims, nonce: 'n-2' }, acme.privateKey, acme.kid))).toBe('invalid');
    const { nonce: _nonce, ...noNonce } = acmeClaims;
    expect(await refusal(await sign(noNonce, acme.privateKey, acme.kid))).toBe('invalid');
    expect(await refusal(await sign({ ...acmeClaims, aud: 'another-app' }, acme.privateKey, acme.kid))).toBe('invalid');
    expect(await refusal(await sign({ ...acmeClaims, aud: ['bulkhead', 'another-app'] }, acme.privateKey, acme.kid))).toBe('invalid');
    expect(await refusal(await sign({ ...acmeClaims, aud: ['bulkhead', 'another-app'], azp: 'another-app' }, acme.privateKey, acme.kid))).toBe('invalid');
    expect(await login.verifyIdToken('acme', acme.settings, await sign({ ...acmeClaims, aud: ['bulkhead', 'another-app'], azp: 'bulkhead' }, acme.privateKey, acme.kid), 'n-1')).toBe('alice@acme.example');
    const expired = await new SignJWT(acmeClaims).setProtectedHeader({ alg: 'ES256', kid: acme.kid }).setIssuedAt(NOW / 1000 - 900).setExpirationTime(NOW / 1000 - 600).sign(acme.privateKey);
    expect(await refusal(expired)).toBe('invalid');
  });

  it('refuses a symmetric signature and a principal claim that is not a usable id', async () => {
    const hmac = await new SignJWT(acmeClaims).setProtectedHeader({ alg: 'HS256', kid: acme.kid }).setIssuedAt(NOW / 1000).setExpirationTime(NOW / 1000 + 300).sign(new TextEncoder().encode('k'.repeat(32)));
    expect(await refusal(hmac)).toBe('invalid');
    expect(await refusal(await sign({ ...acmeClaims, sub: 'alice\u0000admin' }, acme.privateKey, acme.kid))).toBe('invalid');
  });
});
