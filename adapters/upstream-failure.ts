/**
 * The private cause an adapter attaches to its `upstream_unavailable` error. It is what the broker logs,
 * so it carries only what an operator needs to act — which upstream, which operation, on which
 * reference, the HTTP status or network error code — and never an upstream response body: Vault and
 * AWS error texts can quote paths of other tenants, policy names or (for database engines) connection
 * details. The client never sees even this: it gets the BrokerError's public message only.
 */
export class UpstreamFailure extends Error {
  override readonly name = 'UpstreamFailure';
  /** HTTP status the upstream answered with, when it answered. Logged as `status`. */
  readonly statusCode?: number;
  /** Network or SDK error code (ECONNREFUSED, TimeoutError, AccessDeniedException...). */
  readonly code?: string;
  /** Which deadline ended the request when one did (`vault client timeout`, `upstream budget`...). */
  readonly bound?: string;

  constructor(message: string, details: { statusCode?: number; code?: string; bound?: string } = {}) {
    super(message);
    this.statusCode = details.statusCode;
    this.code = details.code;
    this.bound = details.bound;
  }
}

/** A short, body-free word for an HTTP status, for the log line. */
export function statusWord(status: number): string {
  if (status === 400) return 'rejected the request';
  if (status === 401 || status === 403) return 'permission denied';
  if (status === 404) return 'not found';
  if (status === 429) return 'rate limited';
  if (status === 503) return 'unavailable (sealed, standby or overloaded)';
  if (status >= 500) return 'server error';
  return `answered HTTP ${status}`;
}

/**
 * The error code of a failure that never got an HTTP answer: fetch wraps socket errors in a TypeError
 * whose `cause` has the errno code; aborts and timeouts are DOMExceptions named by what happened.
 */
export function networkCode(err: unknown): string {
  // Duck-typed: DOMExceptions (aborts, timeouts) may come from another realm and fail `instanceof Error`.
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; code?: unknown; cause?: unknown };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return e.name;
    const cause = e.cause as { code?: unknown } | undefined;
    if (cause && typeof cause === 'object' && typeof cause.code === 'string') return cause.code;
    if (typeof e.code === 'string') return e.code;
    if (typeof e.name === 'string') return e.name;
  }
  return 'unknown';
}
