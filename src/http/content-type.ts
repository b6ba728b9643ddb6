import type { RequestHandler } from 'express';
import { BrokerError } from '../errors';

/**
 * A body the JSON parser does not read must not reach a handler as "no body": a client that sends
 * `text/plain` or a form to a JSON endpoint gets a 415 naming the content type it should use, rather
 * than a confusing "token: Required". The token endpoint also takes forms (RFC 6749).
 */
const JSON_TYPES = ['application/json', 'application/*+json'];
const FORM_PATHS = new Set(['/v1/token']);

export function requireJsonBody(): RequestHandler {
  return (req, _res, next) => {
    if (!hasBody(req.headers) || req.is(JSON_TYPES)) return next();
    if (FORM_PATHS.has(req.path) && req.is('application/x-www-form-urlencoded')) return next();
    const expected = FORM_PATHS.has(req.path) ? 'application/x-www-form-urlencoded or application/json' : 'application/json';
    next(new BrokerError('bad_request', `Content-Type must be ${expected}`, { status: 415 }));
  };
}

/** An empty body (Content-Length: 0) is no body, whatever its declared type. */
function hasBody(headers: { 'transfer-encoding'?: string; 'content-length'?: string }): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  return Number(headers['content-length'] ?? 0) > 0;
}
