import { z } from 'zod';
import { REASONS, statusOf, type Reason } from '../../errors';

/**
 * What the broker answers, as zod schemas the OpenAPI document is generated from. Error bodies are
 * built from the reason catalogue in errors.ts, so a reason added there is documented under its status
 * everywhere without touching this file. Objects that are the broker's own are loose (`looseObject`):
 * the document promises the fields a client relies on, and a field added later is not a breaking change.
 */

/** The reasons that answer with this status (413/415 are `bad_request` with a more precise status). */
export function reasonsFor(status: number): Reason[] {
  if (status === 413 || status === 415) return ['bad_request'];
  return REASONS.filter((reason) => statusOf(reason) === status);
}

const requestId = z.string().describe('the X-Request-Id of this answer, to find it in the broker log');

/** `{error, message, request_id}`: every error outside the authorize decision. */
export function errorBody(status: number) {
  return z.looseObject({
    error: z.enum(reasonsFor(status) as [Reason, ...Reason[]]),
    message: z.string(),
    request_id: requestId,
  });
}

/** `{decision: "deny", reason, message, call_id}`: every refusal on /v1/authorize and /v1/manifest. */
export function denyBody(status: number) {
  return z.looseObject({
    decision: z.literal('deny'),
    reason: z.enum(reasonsFor(status) as [Reason, ...Reason[]]),
    message: z.string(),
    call_id: z.string().nullable(),
    approval_id: z.string().optional().describe('with approval_required: the approval an operator decides'),
    request_id: requestId,
  });
}

/** RFC 6749 §5.2 errors, as the token, introspection and revocation endpoints answer them. */
export const oauthError = z.looseObject({
  error: z.enum(['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_target', 'temporarily_unavailable', 'server_error']),
  error_description: z.string(),
});

export const isoTime = z.string().describe('an ISO 8601 instant');

export const healthAnswer = z.object({ status: z.literal('ok') });
export const readyAnswer = z.looseObject({
  status: z.enum(['ready', 'not_ready']),
  checks: z.record(z.string(), z.boolean()),
  policy_version: z.string().optional(),
});

export const allowAnswer = z.looseObject({
  decision: z.literal('allow'),
  call_id: z.string(),
  tenant: z.string(),
  principal: z.string(),
  session: z.string(),
  tool: z.string(),
  arguments: z.record(z.string(), z.unknown()).describe('the effective arguments: injected fields forced, tenant-bound'),
  credential: z.looseObject({ source: z.string(), ref: z.string(), value: z.string(), lease_id: z.string().optional(), expires_at: isoTime.optional() }),
  expires_at: isoTime,
  call_context: z.string().optional().describe('a signed call-context assertion, when the tool names a downstream service'),
});

export const completeAnswer = z.looseObject({ call_id: z.string(), completed: z.literal(true), quarantined: z.boolean(), upstream_leases_revoked: z.number().int() });
export const manifestAnswer = z.looseObject({ tenant: z.string(), principal: z.string(), tools: z.array(z.string()), step_up: z.array(z.string()) });

export const tokenAnswer = z.looseObject({
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int(),
  scope: z.string(),
  issued_token_type: z.string().optional(),
});
export const introspectionAnswer = z.looseObject({ active: z.boolean() }).describe('RFC 7662: the claims of an active token, or {active: false}');
export const jwksAnswer = z.looseObject({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string() })) });
export const metadataAnswer = z.looseObject({ issuer: z.string(), token_endpoint: z.string(), jwks_uri: z.string() }).describe('RFC 8414');
export const auditKeysAnswer = z.looseObject({ keys: z.array(z.looseObject({ kid: z.string() })) });

export const revokeAnswer = z.looseObject({
  revoked: z.looseObject({ tenant: z.string().optional(), session: z.string().optional(), principal: z.string().optional(), jti: z.string().optional() }),
  upstream_leases_revoked: z.number().int(),
  effective_at: isoTime,
});
export const restoreAnswer = z.looseObject({ restored: z.boolean() });
export const revocationsAnswer = z.looseObject({ revocations: z.array(z.looseObject({ kind: z.string(), revoked_at: isoTime })) });
export const quarantinesAnswer = z.looseObject({ quarantines: z.array(z.looseObject({})) });
export const liftAnswer = z.looseObject({ tenant: z.string(), session: z.string() });
const window = z.looseObject({ used: z.number(), limit: z.number(), resets_at: isoTime }).optional();
export const tenantAnswer = z.looseObject({
  tenant: z.string(),
  revoked: z.boolean(),
  live_sessions: z.number().int(),
  quota: z.looseObject({ calls_per_minute: z.number().int(), concurrency: z.number().int() }),
  budget: z.looseObject({ hourly: window, daily: window }).nullable(),
});
export const approvalsAnswer = z.looseObject({
  tenant: z.string(),
  approvals: z.array(z.looseObject({ id: z.string(), principal: z.string(), session: z.string(), tool: z.string(), created_at: isoTime, expires_at: isoTime })),
});
export const decisionAnswer = z.looseObject({ id: z.string(), status: z.enum(['approved', 'denied']), tenant: z.string(), tool: z.string() });
export const reloadAnswer = z.looseObject({ version: z.string(), previous_version: z.string(), changed: z.boolean(), diff: z.looseObject({}) });
export const rotateAnswer = z.looseObject({ rotated: z.literal(true), current_kid: z.string() });

const auditEvent = z.looseObject({ seq: z.number().int(), ts: isoTime, type: z.string(), hash: z.string() });
export const auditPage = z.looseObject({ tenant: z.string(), events: z.array(auditEvent), next_after: z.number().int().optional() });
export const verifyAnswer = z.looseObject({
  ok: z.boolean(),
  tenant: z.string(),
  events: z.number().int(),
  head: z.string(),
  checkpoints: z.number().int(),
  signed_through: z.number().int(),
  unsealed: z.number().int(),
  broken: z.looseObject({ seq: z.number().int(), problem: z.string(), kind: z.string() }).optional(),
});
export const checkpointsAnswer = z.looseObject({ tenant: z.string(), checkpoints: z.array(z.looseObject({})), invalid: z.number().int() });
export const bundleAnswer = z.looseObject({
  format: z.string(),
  manifest: z.looseObject({}),
  signature: z.looseObject({ alg: z.literal('EdDSA'), kid: z.string(), value: z.string() }),
  records: z.array(z.looseObject({})),
  checkpoints: z.array(z.looseObject({})),
  keys: auditKeysAnswer,
});
export const sealAnswer = z.looseObject({ tenant: z.string(), seq: z.number().int(), hash: z.string(), ts: isoTime, verified_seq: z.number().int(), break_seq: z.number().int() });

export const tenantExportAnswer = z
  .looseObject({ format: z.string(), tenant: z.string(), created_at: isoTime, policy: z.looseObject({}), secrets: z.looseObject({ names: z.array(z.string()) }), sessions: z.looseObject({}), revocations: z.looseObject({}), approvals: z.array(z.looseObject({})), quota: z.looseObject({}), budget: z.looseObject({}), audit: z.looseObject({}), audit_sha256: z.string() })
  .describe('everything the broker holds about one tenant; `audit` is a verifiable bundle');
export const tenantDeleteAnswer = z.looseObject({
  tenant: z.string(),
  deleted: z.literal(true),
  resumed: z.boolean(),
  steps: z.array(z.looseObject({ step: z.string(), status: z.enum(['done', 'skipped']), detail: z.string() })),
  tombstone: z.looseObject({ seq: z.number().int(), hash: z.string(), ts: isoTime }),
  retained: z.array(z.string()),
  purge: z.looseObject({ record: z.looseObject({ stream: z.string(), seq: z.number().int(), hash: z.string() }), purged: z.looseObject({ seq: z.number().int(), hash: z.string() }), export_sha256: z.string(), export_seq: z.number().int() }).optional(),
});
export const countersignAnswer = z.looseObject({
  statement: z.looseObject({ kind: z.string(), issuer: z.string(), report_digest: z.string(), run_id: z.string(), ok: z.boolean(), signed_at: isoTime }),
  signature: z.looseObject({ alg: z.literal('EdDSA'), kid: z.string(), value: z.string() }),
});

export const correlateAnswer = z.looseObject({
  request_id: z.string(),
  matches: z.array(z.looseObject({ tenant: z.string(), seq: z.number().int(), type: z.string(), ts: isoTime, hash: z.string() })),
});
