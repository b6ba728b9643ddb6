import { readFile } from 'node:fs/promises';
import { jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import { boundedRequest, jsonObjectOf, type BoundedFetch, type RequestLimits } from '../net/bounded-request';
import type { TenantPolicy } from '../policy/schema';
import { challengeOf } from './pkce';

/**
 * The broker's own leg as an OpenID Connect client of one tenant's IdP: send the person there
 * (authorization code, PKCE S256, nonce, state), redeem the code at that IdP's token endpoint, and
 * verify the ID token. The tenant is the one the login was started for, never one read from the ID
 * token: the token must come from that tenant's pinned issuer, signed by that tenant's keys, for the
 * broker's client id at that IdP, carrying the nonce of this very login. An ID token from another
 * tenant's IdP fails the issuer check whatever it says.
 */

export type IdpWithLogin = NonNullable<TenantPolicy['idp']> & { login: NonNullable<NonNullable<TenantPolicy['idp']>['login']> };

/** Asymmetric only, as for token exchange: a JWKS is public, an HMAC keyed with it proves nothing. */
const ID_TOKEN_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const PRINCIPAL = /^[^\u0000-\u001f\u007f]{1,256}$/;

export interface IdpLoginDeps {
  clock: Clock;
  /** The tenant IdP's signing keys (bounded fetch, cached per tenant). */
  keysFor: (tenant: string, idp: IdpWithLogin) => JWTVerifyGetKey;
  limits: RequestLimits;
  clockSkewMs: number;
  fetch?: BoundedFetch;
  readSecret?: (path: string) => Promise<string>;
}

export interface LoginRedirect {
  state: string;
  nonce: string;
  verifier: string;
  redirectUri: string;
  loginHint?: string;
}

/** Why the IdP leg failed: `denied` is the person's or the IdP's answer, `invalid` a bad token, `unavailable` ours. */
export class IdpLoginError extends Error {
  constructor(
    readonly kind: 'denied' | 'invalid' | 'unavailable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'IdpLoginError';
  }
}

export function createIdpLogin(deps: IdpLoginDeps) {
  const fetchFn = deps.fetch ?? boundedRequest;
  const readSecret = deps.readSecret ?? (async (path: string) => (await readFile(path, 'utf8')).trim());

  function authorizationUrl(idp: IdpWithLogin, leg: LoginRedirect): URL {
    const url = new URL(idp.login.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', idp.login.client_id);
    url.searchParams.set('redirect_uri', leg.redirectUri);
    url.searchParams.set('scope', idp.login.scope);
    url.searchParams.set('state', leg.state);
    url.searchParams.set('nonce', leg.nonce);
    url.searchParams.set('code_challenge', challengeOf(leg.verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    if (leg.loginHint !== undefined) url.searchParams.set('login_hint', leg.loginHint);
    return url;
  }

  async function redeem(idp: IdpWithLogin, code: string, verifier: string, redirectUri: string): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (idp.login.client_secret_file !== undefined) {
      let secret: string;
      try {
        secret = await readSecret(idp.login.client_secret_file);
      } catch (err) {
        throw new IdpLoginError('unavailable', 'the client secret for the identity provider could not be read', { cause: err });
      }
      // RFC 6749 §2.3.1: each part form-urlencoded before base64.
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(idp.login.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    } else body.set('client_id', idp.login.client_id);
    let response;
    try {
      response = await fetchFn(new URL(idp.login.token_endpoint), { method: 'POST', headers, body: body.toString() }, deps.limits);
    } catch (err) {
      throw new IdpLoginError('unavailable', 'the identity provider\'s token endpoint could not be reached', { cause: err });
    }
    const answer = jsonObjectOf(response.body);
    if (response.status >= 500 || !answer) throw new IdpLoginError('unavailable', `the identity provider's token endpoint answered HTTP ${response.status}`);
    if (response.status !== 200) throw new IdpLoginError('denied', 'the identity provider refused the login code');
    if (typeof answer.id_token !== 'string' || answer.id_token.length > 16_384) throw new IdpLoginError('invalid', 'the identity provider returned no ID token');
    return answer.id_token;
  }

  /** The principal: the verified ID token's `principal_claim` (default `sub`). */
  async function verifyIdToken(tenant: string, idp: IdpWithLogin, idToken: string, nonce: string): Promise<string> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, deps.keysFor(tenant, idp), {
        issuer: idp.issuer,
        audience: idp.login.client_id,
        algorithms: ID_TOKEN_ALGORITHMS,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'nonce', idp.principal_claim],
        currentDate: new Date(deps.clock.now()),
        clockTolerance: deps.clockSkewMs / 1000,
      }));
    } catch (err) {
      if (err instanceof BrokerError) throw new IdpLoginError('unavailable', err.message, { cause: err });
      const code = (err as { code?: unknown } | null)?.code;
      const ours = typeof code !== 'string' || !code.startsWith('ERR_J') || code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID';
      throw new IdpLoginError(ours ? 'unavailable' : 'invalid', ours ? 'the identity provider\'s keys are unavailable' : 'the ID token could not be verified', { cause: new Error(String(code)) });
    }
    // OIDC Core §3.1.3.7: several audiences need azp, and it must be us.
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== idp.login.client_id) throw new IdpLoginError('invalid', 'the ID token was issued to another client');
    if (payload.nonce !== nonce) throw new IdpLoginError('invalid', 'the ID token belongs to another login (nonce)');
    const principal = payload[idp.principal_claim];
    if (typeof principal !== 'string' || !PRINCIPAL.test(principal)) throw new IdpLoginError('invalid', `the ID token claim "${idp.principal_claim}" is not a usable principal id`);
    return principal;
  }

  return { authorizationUrl, redeem, verifyIdToken };
}

export type IdpLogin = ReturnType<typeof createIdpLogin>;

export function loginSettingsOf(tenant: TenantPolicy | undefined): IdpWithLogin | undefined {
  return tenant?.idp?.login ? (tenant.idp as IdpWithLogin) : undefined;
}
