import { createHash, createHmac, randomBytes } from 'node:crypto';
import { argumentsDigest, argumentsMac, canonicalJson } from '../../../src/crypto/hash';

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
