import { MIMEType } from 'node:util';
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestHandler } from 'express';
import { BrokerError } from '../errors';

/**
 * A body the JSON parser does not read must not reach a handler as "no body": a client that sends
 * `text/plain` or a form to a JSON endpoint gets a 415 naming the content type it should use, rather
 * than a confusing "token: Required". The token, introspection and revocation endpoints also take
 * forms (RFC 6749, 7662, 7009).
 *
 * Every body is UTF-8: a declared charset other than utf-8 (utf-16le, utf-7, latin1…) is a 415 here,
 * before any parser could decode it into text other than the bytes a UTF-8 reader behind us would see.
 *
 * One check for both HTTP stacks: the express middleware below and the plain node:http endpoints
 * (server-endpoints.ts) call `bodyTypeError`.
 */
const FORM_PATHS = new Set(['/v1/token', '/v1/token/introspect', '/v1/token/revoke']);
const UTF8 = new Set(['utf-8', 'utf8']);

export type BodyType = 'json' | 'form' | 'other';

export function requireJsonBody(): RequestHandler {
  return (req, _res, next) => next(bodyTypeError(req.headers, req.path) ?? undefined);
}

/** Null when the body (if any) may be read at `path`; else the 415 to answer. */
export function bodyTypeError(headers: IncomingHttpHeaders, path: string): BrokerError | null {
  if (!hasBody(headers)) return null;
  const contentType = headers['content-type'];
  const mime = parseType(contentType);
  if (!isUtf8(mime)) return new BrokerError('bad_request', 'request body encoding is not supported (use UTF-8)', { status: 415 });
  const type = typeOf(mime);
  if (type === 'json') return null;
  if (FORM_PATHS.has(path) && type === 'form') return null;
  const expected = FORM_PATHS.has(path) ? 'application/x-www-form-urlencoded or application/json' : 'application/json';
  return new BrokerError('bad_request', `Content-Type must be ${expected}`, { status: 415 });
}

/** What a Content-Type header declares: JSON (application/json, application/*+json), a form, or anything else. */
export function bodyType(contentType: string | undefined): BodyType {
  return typeOf(parseType(contentType));
}

// The exact header almost every client sends, answered without parsing it.
const PLAIN_JSON = 'application/json';
type Parsed = MIMEType | typeof PLAIN_JSON | null | undefined;

/** undefined: no header; null: a header that is not a media type. */
function parseType(contentType: string | undefined): Parsed {
  if (contentType === undefined) return undefined;
  if (contentType === PLAIN_JSON) return PLAIN_JSON;
  try {
    return new MIMEType(contentType);
  } catch {
    return null;
  }
}

function typeOf(mime: Parsed): BodyType {
  if (mime === PLAIN_JSON) return 'json';
  if (!mime) return 'other';
  if (mime.type !== 'application') return 'other';
  if (mime.subtype === 'json' || mime.subtype.endsWith('+json')) return 'json';
  return mime.subtype === 'x-www-form-urlencoded' ? 'form' : 'other';
}

/** No charset parameter means UTF-8 (RFC 8259 §8.1); an unparseable header is left to the type check. */
function isUtf8(mime: Parsed): boolean {
  if (!mime || mime === PLAIN_JSON) return true;
  const charset = mime.params.get('charset');
  return charset === null || UTF8.has(charset.toLowerCase());
}

/** An empty body (Content-Length: 0) is no body, whatever its declared type. */
export function hasBody(headers: { 'transfer-encoding'?: string; 'content-length'?: string }): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  return Number(headers['content-length'] ?? 0) > 0;
}
