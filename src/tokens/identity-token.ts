import { decodeJwt, type JWTPayload } from 'jose';
import { BrokerError } from '../errors';
import { OAuthError } from './oauth-error';

/**
 * What the grants that accept someone else's signed identity token share (RFC 8693 token exchange of a
 * tenant IdP token, RFC 7523 jwt-bearer assertions): the algorithms, the form of a principal id taken
 * from a claim, and how a verification failure becomes an answer.
 */

/** Asymmetric only: an issuer's JWKS is public, so an HMAC "signed" with it would prove nothing. */
export const IDENTITY_TOKEN_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA'];

/** A principal id read from a verified claim: printable, bounded. */
export const CLAIMED_PRINCIPAL = /^[^\u0000-\u001f\u007f]{1,256}$/;

/**
 * A bad token is the client's problem (invalid_grant, naming `what`: "subject_token", "assertion"); an
 * issuer whose keys we cannot fetch is ours (503, fail closed). The jose error code is kept as the
 * cause for the log, never the token or its claims.
 */
export function identityTokenError(err: unknown, what: string): Error {
  const code = (err as { code?: unknown } | null)?.code;
  const cause = new Error(typeof code === 'string' ? code : 'identity token verification failed');
  if (code === 'ERR_JWT_EXPIRED') return new OAuthError('invalid_grant', `${what} has expired`, 400, { cause });
  const unreachable = code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JWKS_INVALID' || code === 'ERR_JOSE_GENERIC' || typeof code !== 'string' || !code.startsWith('ERR_J');
  if (unreachable) return new BrokerError('upstream_unavailable', 'the identity token issuer\'s keys are unavailable', { cause: err });
  return new OAuthError('invalid_grant', `${what} could not be verified`, 400, { cause });
}

/**
 * A JWT's `iss`, read WITHOUT verifying anything: only to pick which issuer's keys and rules to verify
 * with (verification then requires that same issuer). `what` names the token in the error.
 */
export function unverifiedIssuer(jwt: string, what: string): string {
  let claims: JWTPayload;
  try {
    claims = decodeJwt(jwt);
  } catch {
    throw new OAuthError('invalid_grant', `${what} is not a JWT`);
  }
  if (typeof claims.iss !== 'string') throw new OAuthError('invalid_grant', `${what} has no issuer`);
  return claims.iss;
}
