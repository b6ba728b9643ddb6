import express, { type RequestHandler } from 'express';
import { BrokerError } from '../errors';
import { decodeUtf8, parseStrictJson, StrictJsonError } from './strict-json';

export const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * Reads a JSON body with the strict reader: body-parser only collects the bytes (and enforces the size
 * limit); decoding and parsing happen here, so there is exactly one reading of every JSON body. The
 * charset was already checked by requireJsonBody. Any JSON value other than an object is refused, as
 * no endpoint takes one.
 */
export function strictJsonBody(options: { limit: string }): RequestHandler {
  const collect = express.raw({ type: JSON_TYPES, limit: options.limit });
  return (req, res, next) => {
    collect(req, res, (err?: unknown) => {
      if (err) return next(err);
      if (!Buffer.isBuffer(req.body)) return next();
      if (req.body.length === 0) {
        req.body = undefined;
        return next();
      }
      try {
        const value = parseStrictJson(decodeUtf8(req.body));
        if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new BrokerError('bad_request', 'request body must be a JSON object');
        req.body = value;
        next();
      } catch (parseErr) {
        req.body = undefined;
        if (parseErr instanceof StrictJsonError) next(new BrokerError('bad_request', `request body ${parseErr.kind === 'syntax' ? 'is not valid JSON' : 'is refused'}: ${parseErr.message}`));
        else next(parseErr);
      }
    });
  };
}
