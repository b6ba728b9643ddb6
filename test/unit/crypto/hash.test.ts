import { createHash, createHmac, randomBytes } from 'node:crypto';
import { argumentsDigest, argumentsMac, canonicalJson, canonicalJsonSha256, sha256Hex } from '../../../src/crypto/hash';

const key = randomBytes(32);
const mac = (args: unknown) => argumentsMac(key, args);

describe('argumentsMac: equal arguments MAC alike under one key, different ones never do', () => {
  it('ignores key order at every depth', () => {
    expect(mac({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: 3 } })).toBe(mac({ a: { c: 3, d: [1, { e: 2, f: 1 }] }, b: 1 }));
  });

  it.each([
    ['an own __proto__ key', '{"a":1}', '{"a":1,"__proto__":{"hidden":true}}'],
    ['an own __proto__ key nested', '{"a":{}}', '{"a":{"__proto__":{"hidden":true}}}'],
    ['__proto__ holding different content', '{"__proto__":{"x":1}}', '{"__proto__":{"x":2}}'],
    ['constructor', '{}', '{"constructor":{"prototype":{"x":1}}}'],
  ])('tells apart arguments that differ only by %s', (_name, a, b) => {
    expect(mac(JSON.parse(a))).not.toBe(mac(JSON.parse(b)));
  });

  it('keeps an own __proto__ key in the canonical text', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"z":1,"y":2}}'))).toBe('{"__proto__":{"y":2,"z":1},"b":1}');
  });

  it('is HMAC-SHA256 of the canonical JSON, never its plain SHA-256 (a guess hashed does not match)', () => {
    const args = { to: 'ceo@acme.example', amount: 100 };
    const text = canonicalJson(args);
    expect(mac(args)).toBe(createHmac('sha256', key).update(text).digest('hex'));
    expect(mac(args)).not.toBe(createHash('sha256').update(text).digest('hex'));
    expect(mac(args)).not.toBe(argumentsMac(randomBytes(32), args));
  });

  it('argumentsDigest (the call context\'s args_s256) is the base64url SHA-256 a downstream recomputes', () => {
    expect(argumentsDigest({ b: 1, a: 2 })).toBe(createHash('sha256').update('{"a":2,"b":1}').digest('base64url'));
  });
});

const sparse: unknown[] = [1];
sparse[3] = 'x';
const CASES: Array<[string, unknown]> = [
  ['primitives', [0, -0, 1.5e300, 'a"\\\n\u2028\ud800', true, false, null]],
  ['non-finite numbers', { a: NaN, b: Infinity, c: [-Infinity] }],
  ['undefined, functions and symbols', { a: undefined, b: () => 1, c: Symbol('s'), d: [undefined, () => 1, Symbol('t')], e: 1 }],
  ['only left-out members', { a: undefined }],
  ['holes', sparse],
  ['keys needing escapes and their sort order', { 'é': 1, Z: 2, a: 3, '10': 4, '9': 5, '': 6, 'k"\n': 7, '\ud83d\ude00': 8, '\uffff': 9 }],
  ['index-like keys around the array-index limit', { '4294967295': 1, '4294967294': 2, '01': 3, '1': 4, '-1': 5, '1.5': 6, '2': 7, '0': 8 }],
  ['own __proto__ keys', JSON.parse('{"b":1,"__proto__":{"z":[{"__proto__":null}],"y":2}}')],
  ['a Date and boxed primitives (no toJSON, own keys only)', { d: new Date(0), n: Object(1), s: Object('ab') }],
  ['deep nesting', { z: [[[{ y: { x: [1, { w: {} }] } }]]], a: [] }],
  ['a null-prototype object', Object.assign(Object.create(null) as object, { b: 1, a: 2 })],
];

/** Deterministic random JSON documents (a seeded LCG), with index-like keys and escapes. */
function randomDocuments(count: number): unknown[] {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const gen = (depth: number): unknown => {
    const r = rand();
    if (depth > 4 || r < 0.3) return [null, true, 1.25, -3, 'x', '\u0000é'][Math.floor(rand() * 6)];
    if (r < 0.6) return Array.from({ length: Math.floor(rand() * 4) }, () => gen(depth + 1));
    const obj: Record<string, unknown> = {};
    for (let i = Math.floor(rand() * 5); i > 0; i--) obj[rand() < 0.2 ? String(Math.floor(rand() * 20)) : String.fromCharCode(97 + Math.floor(rand() * 26)) + (rand() < 0.3 ? '"' : '')] = gen(depth + 1);
    return obj;
  };
  return Array.from({ length: count }, () => gen(0));
}

describe('canonicalJson writes exactly what JSON.stringify of a key-sorted copy writes', () => {
  // The definition it replaced, kept here as the reference.
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
  const reference = (value: unknown) => JSON.stringify(sortKeys(value));

  it.each<[string, unknown]>(CASES)('%s', (_name, value) => {
    expect(canonicalJson(value)).toBe(reference(value));
  });

  it('agrees on top-level values JSON.stringify leaves out', () => {
    for (const value of [undefined, () => 1, Symbol('u')]) expect(canonicalJson(value)).toBe(reference(value));
  });

  it('throws on a BigInt as JSON.stringify does', () => {
    expect(() => canonicalJson({ a: 1n })).toThrow(TypeError);
  });

  it('agrees on random JSON documents', () => {
    for (const value of randomDocuments(500)) expect(canonicalJson(value)).toBe(reference(value));
  });
});

describe('canonicalJsonSha256 is the SHA-256 of canonicalJson, streamed', () => {
  const digest = (value: unknown) => sha256Hex(canonicalJson(value));

  it.each<[string, unknown]>(CASES)('%s', (_name, value) => {
    expect(canonicalJsonSha256(value)).toBe(digest(value));
  });

  it('agrees on random JSON documents', () => {
    for (const value of randomDocuments(500)) expect(canonicalJsonSha256(value)).toBe(digest(value));
  });

  it('writes an object met several times (shared leaves, at any depth) as the copies would be written', () => {
    const leaf = { credential: 'crm', approval: false, cost: 0, gone: undefined };
    const list = ['b', undefined, 'a'];
    const shared = { z: leaf, a: [leaf, list, { leaf, list }], m: { list, deeper: { leaf } }, again: leaf };
    expect(canonicalJsonSha256(shared)).toBe(digest(shared));
    expect(canonicalJsonSha256({ a: leaf, b: { ...leaf } })).toBe(digest({ a: leaf, b: { ...leaf } }));
  });

  it('agrees across the chunk boundary and on a policy-sized value', () => {
    const tools = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`tool${i}`, i % 7 === 0 ? { credential: 'crm', prefix: `t${i}/` } : { credential: 'crm' }]));
    const big = { tenants: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`t${i}`, { tools, note: 'é'.repeat(70_000 + i) }])) };
    expect(canonicalJsonSha256(big)).toBe(digest(big));
  });

  it('throws where canonicalJson has no text or JSON.stringify throws', () => {
    for (const value of [undefined, () => 1, Symbol('u')]) expect(() => canonicalJsonSha256(value)).toThrow(TypeError);
    expect(() => canonicalJsonSha256({ a: 1n })).toThrow(TypeError);
  });
});
