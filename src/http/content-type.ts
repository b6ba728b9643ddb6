import { MIMEType } from 'node:util';
import type { RequestHandler } from 'express';
import { BrokerError } from '../errors';
import { JSON_TYPES } from './json-body';

/**
 * A body the JSON parser does not read must not reach a handler as "no body": a client that sends
 * `text/plain` or a form to a JSON endpoint gets a 415 naming the content type it should use, rather
 * than a confusing "token: Required". The token, introspection and revocation endpoints also take
 * forms (RFC 6749, 7662, 7009).
 *
 * Every body is UTF-8: a declared charset other than utf-8 (utf-16le, utf-7, latin1…) is a 415 here,
 * before any parser could decode it into text other than the bytes a UTF-8 reader behind us would see.
 */
const FORM_PATHS = new Set(['/v1/token', '/v1/token/introspect', '/v1/token/revoke']);
const UTF8 = new Set(['utf-8', 'utf8']);

export function requireJsonBody(): RequestHandler {
  return (req, _res, next) => {
    if (!hasBody(req.headers)) return next();
    if (!isUtf8(req.headers['content-type'])) {
      return next(new BrokerError('bad_request', 'request body encoding is not supported (use UTF-8)', { status: 415 }));
    }
    if (req.is(JSON_TYPES)) return next();
    if (FORM_PATHS.has(req.path) && req.is('application/x-www-form-urlencoded')) return next();
    const expected = FORM_PATHS.has(req.path) ? 'application/x-www-form-urlencoded or application/json' : 'application/json';
    next(new BrokerError('bad_request', `Content-Type must be ${expected}`, { status: 415 }));
  };
}

/** No charset parameter means UTF-8 (RFC 8259 §8.1); an unparseable header is left to the type check. */
function isUtf8(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  let charset: string | null;
  try {
    charset = new MIMEType(contentType).params.get('charset');
  } catch {
    return true;
  }
  return charset === null || UTF8.has(charset.toLowerCase());
}

/** An empty body (Content-Length: 0) is no body, whatever its declared type. */
function hasBody(headers: { 'transfer-encoding'?: string; 'content-length'?: string }): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  return Number(headers['content-length'] ?? 0) > 0;
}
