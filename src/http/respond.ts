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

/** A JSON answer, before it is written by express (below) or by the plain node:http endpoints (server-endpoints.ts). */
export interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter?: number;
  /** The reason code, for the request's log line. */
  reason?: string;
}

/** The deny an authorize or manifest call gets for `err`; `callId` is echoed so the caller can match it. */
export function denyAnswer(err: unknown, context: FailureContext, callId?: string): Answer {
  const error = toBrokerError(err, 'state_unavailable', context);
  return {
    status: error.status,
    retryAfter: error.retryAfter,
    reason: error.reason,
    body: { decision: 'deny', reason: error.reason, message: error.message, call_id: callId ?? null, ...(error.details ?? {}), request_id: context.requestId },
  };
}

/** The error answer of every other endpoint. */
export function errorAnswer(err: unknown, context: FailureContext): Answer {
  const error = toBrokerError(err, 'internal_error', context);
  return { status: error.status, retryAfter: error.retryAfter, reason: error.reason, body: { error: error.reason, message: error.message, ...(error.details ?? {}), request_id: context.requestId } };
}

export interface FailureContext {
  requestId: string;
  path: string;
  logger: Logger;
}

export function sendDeny(req: Request, res: Response, err: unknown, logger: Logger, callId?: string): void {
  sendAnswer(res, denyAnswer(err, { requestId: requestId(res), path: req.path, logger }, callId));
}

export function sendError(req: Request, res: Response, err: unknown, logger: Logger): void {
  sendAnswer(res, errorAnswer(err, { requestId: requestId(res), path: req.path, logger }));
}

function sendAnswer(res: Response, answer: Answer): void {
  // The request's platform log line names the reason (app.ts requestLog).
  res.locals.reason = answer.reason;
  if (answer.retryAfter !== undefined) res.setHeader('Retry-After', String(answer.retryAfter));
  res.status(answer.status).json(answer.body);
}

function toBrokerError(err: unknown, fallback: 'state_unavailable' | 'internal_error', { requestId, path, logger }: FailureContext): BrokerError {
  if (isBrokerError(err)) {
    if (err.status >= 500) logger.warn({ requestId, path, reason: err.reason, err: err.cause ?? err }, 'request failed closed');
    return err;
  }
  logger.error({ requestId, path, err }, 'unexpected error');
  const message = fallback === 'internal_error' ? 'internal error' : 'the broker could not reach a decision; denied';
  return new BrokerError(fallback, `${message} (request id ${requestId})`);
}

export function bodyTooLarge(limit: number | undefined): BrokerError {
  return new BrokerError('bad_request', `request body is larger than the ${limit ?? 'configured'} byte limit`, { status: 413 });
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
      return bodyTooLarge(e.limit);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new BrokerError('bad_request', 'request body encoding is not supported (use UTF-8)', { status: 415 });
    default:
      return e.status && e.status < 500 ? new BrokerError('bad_request', 'request body could not be read') : null;
  }
}
