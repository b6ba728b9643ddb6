import express, { type RequestHandler } from 'express';
import { BrokerError } from '../errors';
import { bodyType } from './content-type';
import { decodeUtf8, parseStrictJson, StrictJsonError } from './strict-json';

/**
 * Reads a JSON body with the strict reader: body-parser only collects the bytes (and enforces the size
 * limit); decoding and parsing happen here, so there is exactly one reading of every JSON body. The
 * charset was already checked by requireJsonBody. Any JSON value other than an object is refused, as
 * no endpoint takes one.
 */
export function strictJsonBody(options: { limit: number | string }): RequestHandler {
  const collect = express.raw({ type: (req) => bodyType(req.headers['content-type']) === 'json', limit: options.limit });
  return (req, res, next) => {
    collect(req, res, (err?: unknown) => {
      if (err) return next(err);
      if (!Buffer.isBuffer(req.body)) return next();
      try {
        req.body = readJsonObject(req.body);
        next();
      } catch (parseErr) {
        req.body = undefined;
        next(parseErr);
      }
    });
  };
}

/**
 * The one reading of a JSON body's bytes, for both HTTP stacks (server-endpoints.ts reads its bodies
 * itself): undefined for no bytes, else a JSON object, or a 400 that says why not.
 */
export function readJsonObject(bytes: Uint8Array): Record<string, unknown> | undefined {
  if (bytes.length === 0) return undefined;
  try {
    const value = parseStrictJson(decodeUtf8(bytes));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BrokerError('bad_request', 'request body must be a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    if (err instanceof StrictJsonError) throw new BrokerError('bad_request', `request body ${err.kind === 'syntax' ? 'is not valid JSON' : 'is refused'}: ${err.message}`);
    throw err;
  }
}
