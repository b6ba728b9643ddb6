/**
 * One error type for the whole broker. Every failure that reaches a client is a BrokerError with a
 * stable `reason` from DESIGN.md's list, an HTTP status, and a public message. The private `cause`
 * (an upstream error, a stack) is logged by request id and never sent.
 */

export const DENY_REASONS = [
  'server_unauthenticated',
  'bad_request',
  'token_invalid',
  'token_expired',
  'audience_mismatch',
  'token_revoked',
  'session_revoked',
  'principal_revoked',
  'tenant_revoked',
  'tool_not_allowed',
  'resource_out_of_scope',
  'tenant_override',
  'approval_required',
  'quota_exceeded',
  'concurrency_exceeded',
  'budget_exceeded',
  'session_quarantined',
  'tenant_shredded',
  'upstream_unavailable',
  'audit_unavailable',
  'state_unavailable',
] as const;

export type DenyReason = (typeof DENY_REASONS)[number];

/** Reasons used outside the authorize decision (operator API, token endpoint plumbing). */
export type OtherReason = 'operator_unauthenticated' | 'csrf_refused' | 'not_found' | 'unknown_target' | 'method_not_allowed' | 'conflict' | 'export_required' | 'policy_invalid' | 'internal_error';

export type Reason = DenyReason | OtherReason;

const STATUS: Record<Reason, number> = {
  server_unauthenticated: 401,
  operator_unauthenticated: 401,
  csrf_refused: 403,
  bad_request: 400,
  token_invalid: 403,
  token_expired: 403,
  audience_mismatch: 403,
  token_revoked: 403,
  session_revoked: 403,
  principal_revoked: 403,
  tenant_revoked: 403,
  tool_not_allowed: 403,
  resource_out_of_scope: 403,
  tenant_override: 403,
  approval_required: 403,
  session_quarantined: 403,
  tenant_shredded: 403,
  quota_exceeded: 429,
  concurrency_exceeded: 429,
  budget_exceeded: 429,
  upstream_unavailable: 503,
  audit_unavailable: 503,
  state_unavailable: 503,
  not_found: 404,
  // A revoke of a principal, session or token the broker has never seen (a typo?): refused unless forced.
  unknown_target: 404,
  method_not_allowed: 405,
  conflict: 409,
  // tenant delete --purge-audit without an export that covers the stream's last record.
  export_required: 409,
  policy_invalid: 422,
  internal_error: 500,
};

export interface BrokerErrorOptions {
  /** The private detail: logged server-side, never serialised to a client. */
  cause?: unknown;
  /** Seconds, for 429 answers. */
  retryAfter?: number;
  /** Extra public fields for the deny body (e.g. `approval_id`). Never secrets. */
  details?: Record<string, string | number | readonly string[]>;
  /** Overrides the reason's usual status where HTTP needs a more precise one (413 for a huge body). */
  status?: number;
}

export class BrokerError extends Error {
  readonly reason: Reason;
  readonly status: number;
  readonly retryAfter?: number;
  readonly details?: Record<string, string | number | readonly string[]>;

  constructor(reason: Reason, publicMessage: string, options: BrokerErrorOptions = {}) {
    super(publicMessage, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BrokerError';
    this.reason = reason;
    this.status = options.status ?? STATUS[reason];
    this.retryAfter = options.retryAfter;
    this.details = options.details;
  }
}

export function isBrokerError(err: unknown): err is BrokerError {
  return err instanceof BrokerError;
}

/** Runs a step that touches state or an upstream; any failure there is a typed deny (a 503), never an allow. */
export async function failClosed<T>(reason: Reason, message: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isBrokerError(err)) throw err;
    throw new BrokerError(reason, message, { cause: err });
  }
}

export function isDenyReason(value: string): value is DenyReason {
  return (DENY_REASONS as readonly string[]).includes(value);
}

export function statusOf(reason: Reason): number {
  return STATUS[reason];
}

/** Every reason a body can carry, DESIGN.md's denies first (the OpenAPI document lists them per status). */
export const REASONS = Object.keys(STATUS) as Reason[];
