import { AsyncLocalStorage } from 'node:async_hooks';
import type { RequestHandler } from 'express';

/**
 * The request id of the HTTP request being served, wherever its work runs (across awaits), so the audit
 * wrapper in app.ts can stamp it on every record the request causes without any route or the
 * authorizer passing it along. It is the same id as the request's platform log line and X-Request-Id:
 * the one key on which an operator may join the two pipelines (`bulkhead audit correlate`).
 */
const storage = new AsyncLocalStorage<{ requestId: string; locals: Record<string, unknown> }>();

export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

/**
 * Notes the reason code of a token refusal, for the request's platform log line: more precise than what
 * some answers carry (an introspection's `active: false`, an OAuth `invalid_grant` for an expired
 * token), so it is logged in place of the answer's own reason. A reason code names no tenant.
 */
export function noteDenyReason(reason: string): void {
  const store = storage.getStore();
  if (store && store.locals.noted_reason === undefined) store.locals.noted_reason = reason;
}

/**
 * Runs the rest of the chain inside the request's context. Mounted after the body parsers: they resume
 * from stream events, which would run outside a context entered before them.
 */
export function bindRequestContext(): RequestHandler {
  return (_req, res, next) => {
    const requestId = res.locals.requestId as string | undefined;
    if (requestId === undefined) return next();
    storage.run({ requestId, locals: res.locals }, next);
  };
}

/** Runs `work` (and everything it awaits) as part of the request `requestId`; `locals` receives what is noted. */
export function withRequestId<T>(requestId: string, locals: Record<string, unknown>, work: () => T): T {
  return storage.run({ requestId, locals }, work);
}
