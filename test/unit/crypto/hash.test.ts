import { argumentsHash, canonicalJson } from '../../../src/crypto/hash';

describe('argumentsHash: equal arguments hash alike, different ones never do', () => {
  it('ignores key order at every depth', () => {
    expect(argumentsHash({ b: 1, a: { d: [1, { f: 1, e: 2 }], c: 3 } })).toBe(argumentsHash({ a: { c: 3, d: [1, { e: 2, f: 1 }] }, b: 1 }));
  });

  it.each([
    ['an own __proto__ key', '{"a":1}', '{"a":1,"__proto__":{"hidden":true}}'],
    ['an own __proto__ key nested', '{"a":{}}', '{"a":{"__proto__":{"hidden":true}}}'],
    ['__proto__ holding different content', '{"__proto__":{"x":1}}', '{"__proto__":{"x":2}}'],
    ['constructor', '{}', '{"constructor":{"prototype":{"x":1}}}'],
  ])('tells apart arguments that differ only by %s', (_name, a, b) => {
    expect(argumentsHash(JSON.parse(a))).not.toBe(argumentsHash(JSON.parse(b)));
  });

  it('keeps an own __proto__ key in the canonical text', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"z":1,"y":2}}'))).toBe('{"__proto__":{"y":2,"z":1},"b":1}');
  });
});
