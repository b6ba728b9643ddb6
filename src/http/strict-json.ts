/**
 * The one JSON reader for every body the broker accepts. JSON.parse is lenient where a security check
 * must not be: it keeps the last of two duplicate keys (a first-wins parser behind the broker reads the
 * other one), rounds integers it cannot hold (2^53+1 arrives as 2^53), turns 1e400 into Infinity (sent
 * on as null) and accepts lone surrogates (which other decoders turn into U+FFFD, so two different keys
 * can become one). This reader refuses each of those instead, so the value the broker checks, hashes,
 * audits and hands back is the only reading the bytes have.
 *
 * Why not a library: lossless-json (the closest) lets a duplicate through when it deems both values
 * deep-equal, and it deems `{}` equal to `{"__proto__":{}}`; it also recurses without a depth bound.
 */

/** Nesting deeper than this is refused; it bounds the recursion (tool arguments get a tighter limit). */
export const MAX_JSON_DEPTH = 64;

/**
 * Keys no Bulkhead body has and that JavaScript consumers treat specially (`obj[k] = v` with "__proto__"
 * changes a prototype; merges through constructor.prototype pollute every object). Refused anywhere in a
 * body rather than carried as data, so no copy, merge or hash along the way can read them differently.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The digits an integer literal may have before it certainly exceeds Number.MAX_SAFE_INTEGER (16 digits). */
const MAX_SAFE_DIGITS = String(Number.MAX_SAFE_INTEGER).length;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
// In a u-mode regex a well-formed surrogate pair is one code point, so \p{Cs} matches only lone halves.
const LONE_SURROGATE = /\p{Cs}/u;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Thrown for any input that is not strict JSON; the message says why and where, never what was sent. */
export class StrictJsonError extends Error {
  constructor(
    readonly why: string,
    readonly offset: number,
    /** 'syntax': not JSON at all; 'refused': JSON, but a form this reader does not accept. */
    readonly kind: 'syntax' | 'refused' = 'syntax',
  ) {
    super(`${why} at character ${offset}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes UTF-8 bytes, refusing invalid and overlong sequences and encoded surrogates. ignoreBOM keeps
 * a byte order mark in the text, where the parser refuses it like any other stray character.
 */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new StrictJsonError('the body is not valid UTF-8', 0, 'refused');
  }
}

export function parseStrictJson(text: string): unknown {
  let pos = 0;
  const fail = (why: string, at = pos): never => {
    throw new StrictJsonError(why, at);
  };
  const refuse = (why: string, at: number): never => {
    throw new StrictJsonError(why, at, 'refused');
  };

  const skipWhitespace = () => {
    for (let c = text.charCodeAt(pos); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(++pos));
  };

  function value(depth: number): unknown {
    skipWhitespace();
    const c = text[pos];
    if (c === '{') return object(depth + 1);
    if (c === '[') return array(depth + 1);
    if (c === '"') return string();
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return number();
    for (const [word, literal] of [['true', true], ['false', false], ['null', null]] as const) {
      if (text.startsWith(word, pos)) {
        pos += word.length;
        return literal;
      }
    }
    return fail(pos >= text.length ? 'unexpected end of input' : 'unexpected character');
  }

  /** Reads the members of an object or array up to `close`, calling `member` once for each. */
  function members(depth: number, close: '}' | ']', member: () => void): void {
    if (depth > MAX_JSON_DEPTH) refuse(`nesting deeper than ${MAX_JSON_DEPTH} levels`, pos);
    pos++;
    skipWhitespace();
    if (text[pos] === close) {
      pos++;
      return;
    }
    for (;;) {
      member();
      skipWhitespace();
      if (text[pos] === ',') {
        pos++;
        continue;
      }
      if (text[pos] === close) {
        pos++;
        return;
      }
      fail(`expected "," or "${close}"`);
    }
  }

  function object(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    members(depth, '}', () => {
      skipWhitespace();
      const keyAt = pos;
      if (text[pos] !== '"') fail('expected a quoted key');
      const key = string();
      if (RESERVED_KEYS.has(key)) refuse(`reserved key ${JSON.stringify(key)}`, keyAt);
      if (Object.hasOwn(out, key)) refuse('duplicate key', keyAt);
      skipWhitespace();
      if (text[pos] !== ':') fail('expected ":"');
      pos++;
      // defineProperty, not assignment: no key may reach a setter, whatever RESERVED_KEYS holds.
      Object.defineProperty(out, key, { value: value(depth), enumerable: true, writable: true, configurable: true });
    });
    return out;
  }

  function array(depth: number): unknown[] {
    const out: unknown[] = [];
    members(depth, ']', () => out.push(value(depth)));
    return out;
  }

  function string(): string {
    const start = pos;
    let out = '';
    let run = ++pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (Number.isNaN(c)) fail('unterminated string', start);
      if (c === 0x22) break;
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        pos++;
        continue;
      }
      out += text.slice(run, pos);
      const escape = text[pos + 1] ?? '';
      if (escape === 'u') {
        const hex = text.slice(pos + 2, pos + 6);
        if (!/^[0-9A-Fa-f]{4}$/.test(hex)) fail('invalid \\u escape');
        out += String.fromCharCode(parseInt(hex, 16));
        pos += 6;
      } else {
        if (!Object.hasOwn(ESCAPES, escape)) fail('invalid escape');
        out += ESCAPES[escape];
        pos += 2;
      }
      run = pos;
    }
    out += text.slice(run, pos);
    pos++;
    if (LONE_SURROGATE.test(out)) refuse('a string holds a lone surrogate (not valid Unicode)', start);
    return out;
  }

  function number(): number {
    const start = pos;
    NUMBER.lastIndex = pos;
    const match = NUMBER.exec(text);
    if (!match) return fail('invalid number');
    pos += match[0].length;
    const isIntegerLiteral = match[1] === undefined && match[2] === undefined;
    // Judged on the source text for integers: the digit count alone says a literal is past 2^53-1, and
    // below that Number() is exact, so nothing is checked after a rounding that may have hidden it.
    const digits = match[0].replace('-', '').length;
    if (isIntegerLiteral && digits > MAX_SAFE_DIGITS) refuse('integer outside ±(2^53-1)', start);
    const parsed = Number(match[0]);
    if (!Number.isFinite(parsed)) refuse('number out of range', start);
    // Any double this large is an integer, and no longer the one that was written: refused too.
    if (Math.abs(parsed) > Number.MAX_SAFE_INTEGER) refuse('integer outside ±(2^53-1)', start);
    return parsed;
  }

  const result = value(0);
  skipWhitespace();
  if (pos < text.length) fail('unexpected text after the JSON value');
  return result;
}
