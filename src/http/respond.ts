import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { BrokerError, isBrokerError } from '../errors';

/**
 * Errors become responses here and nowhere else. A BrokerError exposes its reason and public message;
 * anything else is logged with the request id and answered with a generic body. The authorize path
 * fails closed: an unexpected error there is a 503 deny, never a 500 that a careless client might retry
 * into an allow.
 */
export function requestId(res: Response): string {
  return String(res.locals.requestId ?? '');
}

export function sendDeny(req: Request, res: Response, err: unknown, logger: Logger, callId?: string): void {
  const error = toBrokerError(err, 'state_unavailable', res, logger, req);
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  res.status(error.status).json({
    decision: 'deny',
    reason: error.reason,
    message: error.message,
    call_id: callId ?? null,
    ...(error.details ?? {}),
    request_id: requestId(res),
  });
}

export function sendError(req: Request, res: Response, err: unknown, logger: Logger): void {
  const error = toBrokerError(err, 'internal_error', res, logger, req);
  if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
  res.status(error.status).json({ error: error.reason, message: error.message, ...(error.details ?? {}), request_id: requestId(res) });
}

function toBrokerError(err: unknown, fallback: 'state_unavailable' | 'internal_error', res: Response, logger: Logger, req: Request): BrokerError {
  const error = brokerErrorOf(err, fallback, res, logger, req);
  // The request's platform log line names the reason (app.ts requestLog).
  res.locals.reason = error.reason;
  return error;
}

function brokerErrorOf(err: unknown, fallback: 'state_unavailable' | 'internal_error', res: Response, logger: Logger, req: Request): BrokerError {
  if (isBrokerError(err)) {
    if (err.status >= 500) logger.warn({ requestId: requestId(res), path: req.path, reason: err.reason, err: err.cause ?? err }, 'request failed closed');
    return err;
  }
  logger.error({ requestId: requestId(res), path: req.path, err }, 'unexpected error');
  const message = fallback === 'internal_error' ? 'internal error' : 'the broker could not reach a decision; denied';
  return new BrokerError(fallback, `${message} (request id ${requestId(res)})`);
}

/** Turns express body-parser failures into named 4xx errors. */
export function bodyParserError(err: unknown): BrokerError | null {
  const e = err as { type?: string; status?: number; limit?: number; body?: unknown };
  if (!e || typeof e !== 'object' || typeof e.type !== 'string') return null;
  switch (e.type) {
    case 'entity.parse.failed':
      // JSON bodies are parsed by strictJsonBody, which answers for itself; this is the form parser.
      return new BrokerError('bad_request', 'request body could not be parsed');
    case 'entity.too.large':
      return new BrokerError('bad_request', `request body is larger than the ${e.limit ?? 'configured'} byte limit`, { status: 413 });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new BrokerError('bad_request', 'request body encoding is not supported (use UTF-8)', { status: 415 });
    default:
      return e.status && e.status < 500 ? new BrokerError('bad_request', 'request body could not be read') : null;
  }
}
