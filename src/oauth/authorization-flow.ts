import type { Clock } from '../clock';
import type { Policy } from '../policy/schema';
import { intersect, narrowScope, own, resolveAudience, tenantTools } from '../tokens/grant-scope';
import { OAuthError } from '../tokens/oauth-error';
import { readAuthorizationRequest, type AuthorizationRequest } from './authorization-request';
import { redirectUriRegistered, UnknownClientError, type ClientRegistry, type OAuthClient } from './clients';
import { IdpLoginError, loginSettingsOf, type IdpLogin } from './idp-login';
import type { OneTimeStore } from './one-time-store';
import { handleKey, newVerifier, randomHandle } from './pkce';
import { findTenant } from './tenant-finder';

/**
 * The authorization endpoint's logic, without HTTP: authorization code + PKCE for MCP clients,
 * federated to the tenant's own IdP. The order of checks is the point:
 * 1. the client and its exact redirect URI, before anything is redirected anywhere (an unknown client
 *    or a foreign redirect URI gets a page, never a redirect: no open redirector);
 * 2. the request itself (code + S256 PKCE + an RFC 8707 resource naming a known server): errors go to
 *    the now-trusted redirect URI with `state` and RFC 9207 `iss`;
 * 3. the tenant (client, login hint, or the organisation page), then a pending login stored under a
 *    digest of a fresh `state`, bound to this browser by a cookie, and the redirect to that tenant's IdP;
 * 4. on the callback: the pending login is taken (single use) before anything else; the browser must
 *    hold its cookie; the IdP's `iss` (when sent) must be the tenant's; the ID token must verify against
 *    that tenant's pinned issuer, keys, client id and this login's nonce;
 * 5. a code, stored under its digest for `code_ttl`, bound to client, redirect URI, PKCE challenge,
 *    tenant, principal, server and scope; redeemed once at the token endpoint (authorization-code-grant.ts).
 */

export const CALLBACK_PATH = '/authorize/callback';
/**
 * The cookie binding a login to the browser that started it, one per login in progress (named after
 * its state), so two logins in two tabs do not overwrite each other's binding.
 */
export function loginCookieName(state: string): string {
  return `bulkhead_login_${handleKey(state).slice(0, 16)}`;
}

export type FlowOutcome =
  | { kind: 'page'; status: number; title: string; message: string }
  | { kind: 'organization'; request: AuthorizationRequest; client: OAuthClient; unknown: boolean }
  | { kind: 'redirect'; location: string; cookie?: { name: string; value: string; maxAgeSeconds: number } | { name: string; clear: true } };

/** What the pending login keeps between /authorize and the callback. */
interface PendingLogin {
  tenant: string;
  binding: string;
  nonce: string;
  verifier: string;
  client_id: string;
  redirect_uri: string;
  state?: string;
  code_challenge: string;
  server: string;
  resource: string;
  scope?: string;
}

/** What a code stands for; read by the authorization_code grant. */
export interface CodeGrant {
  tenant: string;
  principal: string;
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  server: string;
  resource: string;
  scope: string[];
  /** Epoch seconds the person authenticated at the IdP. */
  auth_time: number;
}

export interface AuthorizationFlowDeps {
  policy: () => Policy;
  clients: ClientRegistry;
  idp: IdpLogin;
  store: OneTimeStore;
  clock: Clock;
  /** The broker's issuer: `iss` in every authorization response, base of the callback URL. */
  issuer: string;
}

export function createAuthorizationFlow(deps: AuthorizationFlowDeps) {
  const callbackUrl = deps.issuer.replace(/\/+$/, '') + CALLBACK_PATH;
  const page = (status: number, title: string, message: string): FlowOutcome => ({ kind: 'page', status, title, message });

  /** RFC 6749 §4.1.2 / §4.1.2.1 plus RFC 9207: every answer to the client names us as `iss`. */
  function toClient(redirectUri: string, params: Record<string, string | undefined>, cookie?: { name: string; clear: true }): FlowOutcome {
    const url = new URL(redirectUri);
    for (const [name, value] of Object.entries(params)) if (value !== undefined) url.searchParams.set(name, value);
    url.searchParams.set('iss', deps.issuer);
    return { kind: 'redirect', location: url.href, ...(cookie ? { cookie } : {}) };
  }
  const clientError = (request: { redirectUri: string; state?: string | undefined }, error: string, description: string, cookie?: { name: string; clear: true }) =>
    toClient(request.redirectUri, { error, error_description: description, state: request.state }, cookie);

  async function begin(query: URLSearchParams): Promise<FlowOutcome> {
    const read = readAuthorizationRequest(query);
    if (!read.request) return page(400, 'This sign-in link is not valid', read.problem.message);
    const request = read.request;
    let client: OAuthClient;
    try {
      client = await deps.clients.resolve(request.clientId);
    } catch (err) {
      if (err instanceof UnknownClientError) return page(err.unavailable ? 503 : 400, 'This application is not registered', err.message);
      throw err;
    }
    if (!redirectUriRegistered(client, request.redirectUri)) return page(400, 'This sign-in link is not valid', 'redirect_uri is not registered for this client');
    if (read.problem?.redirectable) return clientError(request, read.problem.error, read.problem.message);

    const policy = deps.policy();
    try {
      resolveAudience(policy, { resource: request.resource! });
    } catch (err) {
      if (err instanceof OAuthError) return clientError(request, 'invalid_target', err.error_description);
      throw err;
    }
    const choice = findTenant(policy, client, { loginHint: request.loginHint, organization: request.organization });
    if ('conflict' in choice) return clientError(request, 'access_denied', 'this client signs in users of one organisation only');
    if ('ask' in choice) return { kind: 'organization', request, client, unknown: choice.unknown };
    return startLogin(policy, request, choice.tenant);
  }

  async function startLogin(policy: Policy, request: AuthorizationRequest, tenantId: string): Promise<FlowOutcome> {
    const idp = loginSettingsOf(own(policy.tenants, tenantId))!;
    const { id: server } = resolveAudience(policy, { resource: request.resource! });
    const state = randomHandle();
    const binding = randomHandle();
    const pending: PendingLogin = {
      tenant: tenantId,
      binding: handleKey(binding),
      nonce: randomHandle(),
      verifier: newVerifier(),
      client_id: request.clientId,
      redirect_uri: request.redirectUri,
      code_challenge: request.codeChallenge!,
      server,
      resource: request.resource!,
      ...(request.state !== undefined ? { state: request.state } : {}),
      ...(request.scope !== undefined ? { scope: request.scope } : {}),
    };
    const ttl = policy.broker.authorization.login_ttl;
    if (!(await deps.store.put(handleKey(state), JSON.stringify(pending), ttl))) return clientError(request, 'temporarily_unavailable', 'too many logins in progress; try again shortly');
    const location = deps.idp.authorizationUrl(idp, { state, nonce: pending.nonce, verifier: pending.verifier, redirectUri: callbackUrl, ...(request.loginHint !== undefined ? { loginHint: request.loginHint } : {}) });
    return { kind: 'redirect', location: location.href, cookie: { name: loginCookieName(state), value: binding, maxAgeSeconds: Math.ceil(ttl / 1000) } };
  }

  async function callback(query: URLSearchParams, cookie: (name: string) => string | undefined): Promise<FlowOutcome> {
    const state = query.getAll('state');
    if (state.length !== 1 || state[0]!.length > 256) return page(400, 'This sign-in cannot continue', 'the sign-in response has no valid state');
    // Taken first, whatever follows: a state works once, even when this attempt fails.
    const raw = await deps.store.take(handleKey(state[0]!));
    if (raw === null) return page(400, 'This sign-in cannot continue', 'the sign-in expired or was already used; start again from the application');
    const pending = JSON.parse(raw) as PendingLogin;
    const back = { redirectUri: pending.redirect_uri, state: pending.state };
    const clear = { name: loginCookieName(state[0]!), clear: true } as const;
    const bindingCookie = cookie(clear.name);
    if (bindingCookie === undefined || handleKey(bindingCookie) !== pending.binding) {
      return page(400, 'This sign-in cannot continue', 'the sign-in was started in another browser');
    }
    const policy = deps.policy();
    const tenant = own(policy.tenants, pending.tenant);
    const idp = loginSettingsOf(tenant);
    if (!tenant || !idp) return clientError(back, 'access_denied', 'this organisation no longer signs in here', clear);
    // RFC 9207 on our own leg: a response that names another issuer is a mix-up, whatever else it holds.
    const iss = query.getAll('iss');
    if (iss.length > 1 || (iss.length === 1 && iss[0] !== idp.issuer)) return clientError(back, 'access_denied', 'the identity provider response came from another issuer', clear);
    if (query.has('error')) return clientError(back, 'access_denied', 'the identity provider did not sign the user in', clear);
    const code = query.getAll('code');
    if (code.length !== 1 || code[0]!.length === 0 || code[0]!.length > 4096) return clientError(back, 'access_denied', 'the identity provider returned no code', clear);

    let principal: string;
    try {
      const idToken = await deps.idp.redeem(idp, code[0]!, pending.verifier, callbackUrl);
      principal = await deps.idp.verifyIdToken(pending.tenant, idp, idToken, pending.nonce);
    } catch (err) {
      if (!(err instanceof IdpLoginError)) throw err;
      if (err.kind === 'unavailable') return clientError(back, 'temporarily_unavailable', 'the organisation\'s identity provider could not be reached', clear);
      return clientError(back, 'access_denied', err.message, clear);
    }

    let scope: string[];
    try {
      const { server } = resolveAudience(policy, { audience: pending.server });
      scope = narrowScope(intersect(idp.scope ?? tenantTools(tenant), tenantTools(tenant), server.tools), pending.scope);
    } catch (err) {
      if (err instanceof OAuthError) return clientError(back, err.error === 'invalid_target' ? 'invalid_target' : 'invalid_scope', err.error_description, clear);
      throw err;
    }
    const grant: CodeGrant = {
      tenant: pending.tenant,
      principal,
      client_id: pending.client_id,
      redirect_uri: pending.redirect_uri,
      code_challenge: pending.code_challenge,
      server: pending.server,
      resource: pending.resource,
      scope,
      auth_time: Math.floor(deps.clock.now() / 1000),
    };
    const authorizationCode = randomHandle();
    if (!(await deps.store.put(handleKey(authorizationCode), JSON.stringify(grant), policy.broker.authorization.code_ttl))) {
      return clientError(back, 'temporarily_unavailable', 'try again shortly', clear);
    }
    return toClient(pending.redirect_uri, { code: authorizationCode, state: pending.state }, clear);
  }

  return { begin, callback };
}

export type AuthorizationFlow = ReturnType<typeof createAuthorizationFlow>;
