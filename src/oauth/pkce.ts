import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * PKCE (RFC 7636), S256 only: `plain` would hand the verifier to anyone who sees the authorization
 * request, which is what PKCE exists to prevent (OAuth 2.1 and the MCP spec require S256).
 */

/** RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~". */
const VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;
/** The base64url of a SHA-256 digest: exactly 43 characters. */
const CHALLENGE = /^[A-Za-z0-9_-]{43}$/;

export function isCodeChallenge(value: string): boolean {
  return CHALLENGE.test(value);
}

export function challengeOf(verifier: string): string {
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** Constant time over the challenge; a malformed verifier fails before any hashing. */
export function verifierMatches(verifier: string, challenge: string): boolean {
  if (!VERIFIER.test(verifier) || !CHALLENGE.test(challenge)) return false;
  return timingSafeEqual(Buffer.from(challengeOf(verifier)), Buffer.from(challenge));
}

/** A fresh verifier (for the broker's own leg to the tenant IdP). */
export function newVerifier(): string {
  return randomBytes(32).toString('base64url');
}

/** A random value a browser carries (state, code, nonce, binding cookie): 256 bits, base64url. */
export function randomHandle(): string {
  return randomBytes(32).toString('base64url');
}

/** What a store keeps instead of the handle: a leaked store does not hand out usable codes. */
export function handleKey(handle: string): string {
  return createHash('sha256').update(handle).digest('base64url');
}
