/**
 * RFC 8785 (JSON Canonicalization Scheme), exactly: object members sorted by their UTF-16 code units,
 * no whitespace, numbers and strings serialised as ECMAScript's JSON.stringify does. Unlike
 * `canonicalJson` in hash.ts (which hashes arbitrary call arguments and never throws), this refuses what
 * RFC 8785 cannot represent — non-finite numbers, lone surrogates, undefined, functions, class instances —
 * so whatever it signs, a third party's stock RFC 8785 library reproduces byte for byte.
 *
 * On I-JSON values (what audit records hold: strings and safe integers) the two agree; the bundle
 * export checks that for every record it ships.
 */
export function canonicalize(value: unknown): string {
  if (value === null || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('RFC 8785: numbers must be finite');
    return JSON.stringify(value);
  }
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new TypeError('RFC 8785: strings must be valid Unicode (lone surrogate)');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(',')}]`;
  if (typeof value === 'object' && isPlain(value)) {
    const members = Object.keys(value)
      .sort()
      .map((key) => {
        const member = (value as Record<string, unknown>)[key];
        if (member === undefined) throw new TypeError(`RFC 8785: member "${key}" is undefined`);
        return `${canonicalize(key)}:${canonicalize(member)}`;
      });
    return `{${members.join(',')}}`;
  }
  throw new TypeError(`RFC 8785: cannot canonicalize a ${typeof value}`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
