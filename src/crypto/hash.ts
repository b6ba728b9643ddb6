import { createHash, createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';

export function sha256Hex(input: string | Buffer): string {
  return createHash('sha256').update(input).digest('hex');
}

/**
 * Compares a presented secret with a stored SHA-256 hex digest in constant time. Hashing first makes
 * both sides the same length, so neither the length nor the content of the secret leaks by timing.
 */
export function secretMatchesHash(presented: string, expectedSha256Hex: string): boolean {
  const actual = createHash('sha256').update(presented, 'utf8').digest();
  const expected = Buffer.from(expectedSha256Hex, 'hex');
  if (expected.length !== actual.length) {
    // Still spend the comparison so a malformed stored hash is not a timing oracle.
    timingSafeEqual(actual, actual);
    return false;
  }
  return timingSafeEqual(actual, expected);
}

/**
 * Canonical JSON (sorted object keys, no whitespace) so equal arguments always hash the same, and
 * different ones never do: every own key is kept, "__proto__" included (assignment would hit the
 * prototype setter and drop it, so an approved call could carry content its hash does not describe).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as Record<string, unknown>).sort()) {
      Object.defineProperty(out, key, { value: sortKeys((value as Record<string, unknown>)[key]), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

/**
 * What binds a call's arguments wherever the broker or the MCP wrapper records or compares them: the
 * lowercase hex HMAC-SHA256 of their canonical JSON under a secret key. In the broker the key is the
 * tenant's argument key (src/argument-keys), so an audit record or an approval says "these exact
 * arguments" to whoever holds the key, and nothing to someone hashing guesses; in the MCP wrapper it is
 * the wrapper's own requestState key. A plain digest would let anyone who reads the value test a guess.
 */
export function argumentsMac(key: KeyObject | Buffer, args: unknown): string {
  return createHmac('sha256', key).update(canonicalJson(args)).digest('hex');
}

/**
 * The one unkeyed argument digest, for a party that has the arguments but no broker key: the call
 * context's `args_s256` (base64url SHA-256 of the canonical JSON), checked by the downstream service
 * the call is about to reach, which receives the arguments themselves anyway. Never recorded.
 */
export function argumentsDigest(args: unknown): string {
  return createHash('sha256').update(canonicalJson(args)).digest('base64url');
}
