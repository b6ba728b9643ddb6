import { z } from 'zod';
import { isCodeChallenge } from './pkce';

/**
 * The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707, OIDC login_hint),
 * read from the query string. Each parameter appears at most once: a repeated one is an error, so no
 * two readers can disagree about which value counts. Values are bounded; nothing is echoed back except
 * `state`, which belongs to the client.
 */

export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  responseType: string | undefined;
  codeChallenge: string | undefined;
  codeChallengeMethod: string | undefined;
  resource: string | undefined;
  scope: string | undefined;
  state: string | undefined;
  loginHint: string | undefined;
  /** Typed into the organisation page: a tenant id or an email address/domain. */
  organization: string | undefined;
}

export type RequestProblem = { redirectable: false; message: string } | { redirectable: true; error: 'invalid_request' | 'unsupported_response_type' | 'invalid_target'; message: string };

const PARAMS = ['client_id', 'redirect_uri', 'response_type', 'code_challenge', 'code_challenge_method', 'resource', 'scope', 'state', 'login_hint', 'organization'] as const;
const LIMITS: Record<(typeof PARAMS)[number], number> = {
  client_id: 2048,
  redirect_uri: 2048,
  response_type: 32,
  code_challenge: 128,
  code_challenge_method: 16,
  resource: 2048,
  scope: 4096,
  state: 1024,
  login_hint: 256,
  organization: 256,
};
const printable = z.string().regex(/^[\x20-\x7e]*$/);

/**
 * The same parameters and limits as a zod object, for the OpenAPI document: generated from PARAMS and
 * LIMITS, which the reader below enforces, so the two cannot disagree.
 */
export const authorizationQuery = z
  .object(
    Object.fromEntries(
      PARAMS.map((name) => {
        const value = printable.max(LIMITS[name]);
        return [name, name === 'client_id' || name === 'redirect_uri' ? value.min(1) : value.optional()];
      }),
    ) as Record<(typeof PARAMS)[number], z.ZodString | z.ZodOptional<z.ZodString>>,
  )
  .describe('RFC 6749 §4.1.1 with PKCE (RFC 7636, S256 only) and RFC 8707 resource; each parameter at most once');

/** Reads the query. A problem before the redirect URI is trusted is shown on a page, never redirected. */
export function readAuthorizationRequest(query: URLSearchParams): { request: AuthorizationRequest; problem: RequestProblem | null } | { request: null; problem: RequestProblem } {
  const values: Partial<Record<(typeof PARAMS)[number], string>> = {};
  for (const name of PARAMS) {
    const all = query.getAll(name);
    if (all.length > 1) {
      const early = name === 'client_id' || name === 'redirect_uri';
      const message = `${name} must be given once`;
      if (early) return { request: null, problem: { redirectable: false, message } };
      values[name] = all[0];
      continue;
    }
    if (all.length === 1) values[name] = all[0];
  }
  for (const name of ['client_id', 'redirect_uri'] as const) {
    const value = values[name];
    if (value === undefined || value.length === 0) return { request: null, problem: { redirectable: false, message: `${name} is required` } };
    if (value.length > LIMITS[name] || !printable.safeParse(value).success) return { request: null, problem: { redirectable: false, message: `${name} is invalid` } };
  }
  const request: AuthorizationRequest = {
    clientId: values.client_id!,
    redirectUri: values.redirect_uri!,
    responseType: values.response_type,
    codeChallenge: values.code_challenge,
    codeChallengeMethod: values.code_challenge_method,
    resource: values.resource,
    scope: values.scope,
    state: values.state !== undefined && values.state.length <= LIMITS.state ? values.state : undefined,
    loginHint: values.login_hint,
    organization: values.organization,
  };
  return { request, problem: laterProblem(query, values) };
}

/** Problems that are reported to the (now trusted) redirect URI. */
function laterProblem(query: URLSearchParams, values: Partial<Record<(typeof PARAMS)[number], string>>): RequestProblem | null {
  const repeated = PARAMS.find((name) => query.getAll(name).length > 1);
  if (repeated === 'resource') return { redirectable: true, error: 'invalid_target', message: 'one resource per authorization request' };
  if (repeated) return { redirectable: true, error: 'invalid_request', message: `${repeated} must be given once` };
  for (const name of PARAMS) {
    const value = values[name];
    if (value !== undefined && (value.length > LIMITS[name] || !printable.safeParse(value).success)) return { redirectable: true, error: 'invalid_request', message: `${name} is invalid` };
  }
  if (values.response_type !== 'code') return { redirectable: true, error: 'unsupported_response_type', message: 'response_type must be "code"' };
  if (values.code_challenge === undefined) return { redirectable: true, error: 'invalid_request', message: 'code_challenge is required (PKCE)' };
  if (values.code_challenge_method !== 'S256') return { redirectable: true, error: 'invalid_request', message: 'code_challenge_method must be S256' };
  if (!isCodeChallenge(values.code_challenge)) return { redirectable: true, error: 'invalid_request', message: 'code_challenge is invalid' };
  if (values.resource === undefined) return { redirectable: true, error: 'invalid_target', message: 'resource is required (RFC 8707): the MCP server this login is for' };
  return null;
}
