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
 * different ones never do: every own key is kept, "__proto__" included (it is written as text, never
 * assigned, so an approved call cannot carry content its hash does not describe).
 *
 * Written straight to text rather than as JSON.stringify of a key-sorted copy: this runs for every
 * audit record's hash and every call's argument MAC, and the copy (an object and a property definition
 * per key) was most of its cost. The text is the same as JSON.stringify of that copy: own enumerable
 * string keys in default sort order except that array-index keys ("0", "10") come first in numeric
 * order (that is how the copy enumerated its properties, and existing hash chains depend on it), `undefined`/function/symbol members left out of objects and
 * `null` in arrays (holes included), non-finite numbers `null`, no `toJSON` (the copy had none), a
 * BigInt throws. test/unit/crypto/hash.test.ts checks the two against each other.
 */
export function canonicalJson(value: unknown): string {
  if (omitted(value)) return JSON.stringify(value) as string; // undefined, as JSON.stringify says
  let text = '';
  writeCanonical(value, (piece) => {
    text += piece;
  });
  return text;
}

/**
 * sha256Hex(canonicalJson(value)), without ever holding the whole text: it is written to the hash in
 * chunks, and an object met a second time in the same value (a policy shares its identical leaves) is
 * written from the text kept for it the first time it repeated. For a policy of 10,000 tenants × 100
 * tools the one-string form needed a 44 MB string and about 500 MB of heap for its pieces.
 */
export function canonicalJsonSha256(value: unknown): string {
  if (omitted(value)) throw new TypeError('canonicalJsonSha256: the value has no JSON text');
  const hash = createHash('sha256');
  let chunk = '';
  writeCanonical(
    value,
    (piece) => {
      chunk += piece;
      if (chunk.length >= 65_536) {
        hash.update(chunk);
        chunk = '';
      }
    },
    { visited: new Set(), text: new Map() },
  );
  return hash.update(chunk).digest('hex');
}

/** Objects met before in one value, and the text of those met more than once. */
interface Repeats {
  visited: Set<object>;
  text: Map<object, string>;
}

/** Writes the canonical text of `value` (which JSON.stringify would not leave out) piece by piece. */
function writeCanonical(value: unknown, emit: (piece: string) => void, repeats?: Repeats): void {
  if (value === null || typeof value !== 'object') return emit(JSON.stringify(value));
  if (repeats) {
    const known = repeats.text.get(value);
    if (known !== undefined) return emit(known);
    if (repeats.visited.has(value)) {
      const text = canonicalJson(value);
      repeats.text.set(value, text);
      return emit(text);
    }
    repeats.visited.add(value);
  }
  if (Array.isArray(value)) {
    emit('[');
    for (let i = 0; i < value.length; i++) {
      if (i > 0) emit(',');
      const item = (value as unknown[])[i];
      if (omitted(item)) emit('null');
      else writeCanonical(item, emit, repeats);
    }
    return emit(']');
  }
  emit('{');
  let first = true;
  for (const key of indexKeysFirst(Object.keys(value).sort())) {
    const member = (value as Record<string, unknown>)[key];
    if (omitted(member)) continue;
    emit((first ? '' : ',') + JSON.stringify(key) + ':');
    first = false;
    writeCanonical(member, emit, repeats);
  }
  emit('}');
}

/** What JSON.stringify leaves out of an object (and writes as null in an array). */
function omitted(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}

/** A canonical uint32 below 2^32 − 1: a property key every object enumerates first, in numeric order. */
function isArrayIndex(key: string): boolean {
  const c = key.charCodeAt(0);
  if (c < 48 || c > 57 || !/^(?:0|[1-9][0-9]*)$/.test(key)) return false;
  return Number(key) < 4294967295;
}

function indexKeysFirst(sorted: string[]): string[] {
  if (!sorted.some(isArrayIndex)) return sorted;
  const indexes = sorted.filter(isArrayIndex).sort((a, b) => Number(a) - Number(b));
  return [...indexes, ...sorted.filter((key) => !isArrayIndex(key))];
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
