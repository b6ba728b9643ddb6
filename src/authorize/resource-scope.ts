/**
 * Resource scoping: a tool argument that names a path must stay under the tenant's prefix. The check is
 * done on a normalised form, and that normalised form is what the tool receives, so a trick the broker
 * resolved one way cannot be resolved another way by the MCP server behind it.
 *
 * Normalisation is deliberately stricter than any one consumer (filesystem, URL router, object store):
 * anything ambiguous is rejected rather than guessed at.
 */

export interface ResourceRule {
  arg: string;
  prefix: string;
}

export type ScopeResult = { ok: true; normalized: string } | { ok: false; why: string };

type Normalized = { ok: true; absolute: boolean; segments: string[]; trailingSlash: boolean } | { ok: false; why: string };

/** Longer values are rejected before any decoding work, and again after NFKC (which can expand text). */
export const MAX_RESOURCE_LENGTH = 4096;
/** Percent-decoding rounds before a value that still decodes further is rejected (catches %252e%252e and deeper). */
const MAX_DECODE_ROUNDS = 4;

// Control characters (incl. NUL, DEL, C1), format characters (zero-width, bidi overrides that make a
// path read differently in a log or a UI), line/paragraph separators and lone surrogates.
const FORBIDDEN_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
// Slash lookalikes that NFKC leaves alone; some consumers (or humans reading audit) take them as separators.
const SLASH_LOOKALIKES = /[\u2044\u2215\u29F8\u29F9\u2571\u2572]/u;
// "scheme:" at the start: http:, file:, s3:, and Windows drive letters (C:) alike.
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
const PERCENT_TRIPLET = /%[0-9A-Fa-f]{2}/g;
// Segments made only of dots and spaces other than "." and "..": Windows trims trailing dots and spaces,
// so "... " or ".. " can act as "..".
const DOTS_AND_SPACES = /^[.\s]+$/;

export function checkResourceScope(args: Record<string, unknown>, rule: ResourceRule): ScopeResult {
  const value = Object.prototype.hasOwnProperty.call(args, rule.arg) ? args[rule.arg] : undefined;
  if (typeof value !== 'string') return { ok: false, why: 'the argument is missing or not a string' };

  const prefix = normalizeResourcePath(rule.prefix);
  if (!prefix.ok) return { ok: false, why: 'the policy prefix is not a valid path' };
  const path = normalizeResourcePath(value);
  if (!path.ok) return path;

  if (path.absolute !== prefix.absolute) {
    return { ok: false, why: path.absolute ? 'absolute paths are not allowed here' : 'the path must be absolute' };
  }
  if (!isSegmentPrefix(prefix.segments, path.segments)) return { ok: false, why: 'the path is not under the allowed prefix' };
  return { ok: true, normalized: render(path.absolute, path.segments, path.trailingSlash) };
}

/** Decodes, folds and resolves a path into segments, or says why it cannot be trusted. */
export function normalizeResourcePath(raw: string): Normalized {
  if (raw.length === 0) return { ok: false, why: 'the path is empty' };
  if (raw.length > MAX_RESOURCE_LENGTH) return { ok: false, why: `the path is longer than ${MAX_RESOURCE_LENGTH} characters` };

  const decoded = decodeUntilStable(raw);
  if (!decoded.ok) return decoded;
  let text = decoded.text;
  if (text.length > MAX_RESOURCE_LENGTH) return { ok: false, why: `the path is longer than ${MAX_RESOURCE_LENGTH} characters` };
  if (FORBIDDEN_CHARS.test(text)) return { ok: false, why: 'the path contains control or invisible characters' };
  if (SLASH_LOOKALIKES.test(text)) return { ok: false, why: 'the path contains a character that looks like a slash' };
  if (SCHEME.test(text)) return { ok: false, why: 'URLs and drive letters are not allowed' };

  // Backslash is a separator on Windows and in many URL parsers; treat it as one everywhere.
  text = text.replace(/\\/g, '/');
  if (text.startsWith('//')) return { ok: false, why: 'network paths (//host) are not allowed' };

  const absolute = text.startsWith('/');
  const trailingSlash = text.endsWith('/');
  const segments: string[] = [];
  for (const segment of text.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) return { ok: false, why: 'the path climbs above its root' };
      segments.pop();
      continue;
    }
    if (DOTS_AND_SPACES.test(segment)) return { ok: false, why: 'the path has a segment made only of dots and spaces' };
    segments.push(segment);
  }
  if (segments.length === 0) return { ok: false, why: 'the path names no resource' };
  return { ok: true, absolute, segments, trailingSlash };
}

/**
 * Percent-decodes and NFKC-folds until nothing changes. Doing both in one loop matters: NFKC turns a
 * fullwidth ％２ｅ into %2e, and decoding can produce fullwidth characters that NFKC then folds.
 */
function decodeUntilStable(raw: string): { ok: true; text: string } | { ok: false; why: string } {
  let text = raw;
  for (let round = 0; round <= MAX_DECODE_ROUNDS; round++) {
    let next = text;
    if (next.includes('%')) {
      // Every % must start a valid escape; a stray one means the value is not what it seems.
      if (next.replace(PERCENT_TRIPLET, '').includes('%')) return { ok: false, why: 'the path has a malformed percent-encoding' };
      try {
        next = decodeURIComponent(next);
      } catch {
        // Invalid or overlong UTF-8 (e.g. %c0%ae, an overlong ".").
        return { ok: false, why: 'the path has a malformed percent-encoding' };
      }
    }
    next = next.normalize('NFKC');
    if (next === text) return { ok: true, text };
    if (next.length > MAX_RESOURCE_LENGTH) return { ok: false, why: `the path is longer than ${MAX_RESOURCE_LENGTH} characters` };
    text = next;
  }
  return { ok: false, why: 'the path is encoded too many times' };
}

function isSegmentPrefix(prefix: string[], path: string[]): boolean {
  if (path.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== path[i]) return false;
  return true;
}

function render(absolute: boolean, segments: string[], trailingSlash: boolean): string {
  return (absolute ? '/' : '') + segments.join('/') + (trailingSlash ? '/' : '');
}
