import { decodeUtf8, MAX_JSON_DEPTH, parseStrictJson, StrictJsonError } from '../../../src/http/strict-json';

/** The strict reader against JSON.parse: the same values where both accept, a refusal where JSON.parse is lenient. */

function refusal(text: string): { kind: string; why: string } {
  try {
    parseStrictJson(text);
  } catch (err) {
    if (err instanceof StrictJsonError) return { kind: err.kind, why: err.why };
    throw err;
  }
  throw new Error(`accepted ${text}`);
}

describe('reads what JSON.parse reads, identically', () => {
  it.each([
    '{}',
    '[]',
    '{"a":1,"b":[true,false,null],"c":{"d":"e"}}',
    ' \t\n\r{ "a" : [ 1 , 2 ] } \n',
    '"text"',
    '-0',
    '0.5',
    '-1.25e-3',
    '1E2',
    '9007199254740991',
    '-9007199254740991',
    '"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00 é 😀"',
    '{"":1,"a b":2,"ünï":3}',
    '[[[[[]]]]]',
  ])('%s', (text) => {
    expect(parseStrictJson(text)).toStrictEqual(JSON.parse(text));
  });

  it('keeps key order and makes every key an own, enumerable data property', () => {
    const value = parseStrictJson('{"b":1,"a":2,"toString":3,"hasOwnProperty":4}') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['b', 'a', 'toString', 'hasOwnProperty']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
  });
});

describe('refuses what a lenient reader would read some other way', () => {
  it.each([
    ['a duplicate key', '{"a":1,"a":2}'],
    ['a duplicate key with the same value', '{"a":1,"a":1}'],
    ['a duplicate spelled with an escape', '{"tid":"x","t\\u0069d":"y"}'],
    ['a duplicate nested in an array', '[{"a":{"b":1,"b":1}}]'],
    ['__proto__', '{"__proto__":{}}'],
    ['__proto__ spelled with escapes', '{"\\u005f_proto__":1}'],
    ['constructor', '{"a":{"constructor":1}}'],
    ['prototype', '[{"prototype":1}]'],
    ['2^53', '9007199254740992'],
    ['2^53 + 1', '9007199254740993'],
    ['-(2^53 + 1)', '-9007199254740993'],
    ['a 17-digit integer', '10000000000000000'],
    ['a long integer', '1'.repeat(400)],
    ['an unsafe integer written with a fraction', '9007199254740993.0'],
    ['an exponent past 2^53', '1e16'],
    ['1e400', '1e400'],
    ['-1e400', '-1e400'],
    ['a lone high surrogate', '"\\ud800"'],
    ['a lone low surrogate in a key', '{"\\udc00":1}'],
    ['surrogates in the wrong order', '"\\ude00\\ud83d"'],
    ['nesting past the limit', '['.repeat(MAX_JSON_DEPTH + 1) + ']'.repeat(MAX_JSON_DEPTH + 1)],
  ])('%s', (_name, text) => {
    expect(refusal(text).kind).toBe('refused');
  });

  it('reads nesting up to the limit', () => {
    expect(() => parseStrictJson('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH))).not.toThrow();
  });

  it('refuses very deep nesting without overflowing the stack', () => {
    expect(refusal('['.repeat(1_000_000)).kind).toBe('refused');
  });
});

describe('refuses what is not JSON', () => {
  it.each([
    '',
    ' ',
    '{',
    '{"a":1,}',
    '[1,]',
    '{"a" 1}',
    "{'a':1}",
    '{a:1}',
    '01',
    '1.',
    '.5',
    '+1',
    '-',
    '1e',
    'NaN',
    'Infinity',
    'tru',
    'nul',
    '"unterminated',
    '"tab\there"',
    '"\\x41"',
    '"\\u12G4"',
    '{} {}',
    '\uFEFF{}',
    '/* comment */ {}',
  ])('%j', (text) => {
    expect(refusal(text).kind).toBe('syntax');
    expect(() => JSON.parse(text)).toThrow();
  });

  it('never quotes the input in its message', () => {
    const secret = 'sk_live_0123456789abcdef';
    for (const text of [`{"${secret}":1,"${secret}":2}`, `{"a":${secret}}`, `"${secret}`]) {
      try {
        parseStrictJson(text);
      } catch (err) {
        expect((err as Error).message).not.toContain(secret);
      }
    }
  });
});

describe('decodeUtf8', () => {
  it('decodes UTF-8, keeping a byte order mark for the parser to refuse', () => {
    expect(decodeUtf8(Buffer.from('{"é":"😀"}'))).toBe('{"é":"😀"}');
    expect(decodeUtf8(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toBe('\uFEFF{}');
  });

  it.each([
    ['an overlong "."', [0xc0, 0xae]],
    ['an overlong NUL', [0xc0, 0x80]],
    ['a three-byte overlong "/"', [0xe0, 0x80, 0xaf]],
    ['an encoded surrogate', [0xed, 0xa0, 0x80]],
    ['a code point past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['a lone continuation byte', [0x80]],
    ['a truncated sequence', [0xe2, 0x82]],
    ['FF', [0xff]],
    ['a UTF-16LE byte order mark', [0xff, 0xfe, 0x7b, 0x00]],
  ])('refuses %s', (_name, bytes) => {
    expect(() => decodeUtf8(Buffer.from(bytes))).toThrow(StrictJsonError);
  });
});
