import { Router } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { ApprovalStore } from '../../approvals/approval-store';
import type { ShowApproval } from '../../approvals/approval-view';
import type { AuditLog } from '../../audit/audit-log';
import type { Clock } from '../../clock';
import { BrokerError } from '../../errors';
import type { BrokerMetrics } from '../../observability/metrics';
import type { createKillSwitch } from '../../operator/kill-switch';
import type { createQuarantineReview } from '../../operator/quarantine-review';
import type { createRestore } from '../../operator/restore';
import { listingOf } from '../../operator/revocation-view';
import { parseDuration } from '../../policy/duration';
import type { ReloadResult } from '../../policy/live-policy';
import { PolicyError } from '../../policy/load';
import { idSchema, type Policy } from '../../policy/schema';
import type { QuotaStore } from '../../quotas/quota-store';
import { secondsUntilReset, tenantBudgetKey, type BudgetStore } from '../../budgets/budget-store';
import type { RevocationStore } from '../../revocation/revocation-store';
import type { SessionStore } from '../../sessions/session-store';
import { knownTenantOf, operatorOf } from '../operator-context';
import { parseBody } from '../parse-body';
import { sendError } from '../respond';

const targetId = z.string().min(1).max(256);
const reason = z.string().max(500);
/** "90s", "15m", "1h", "7d" (as in policy) or seconds; at most a year. */
const ttl = z
  .union([z.string().max(32), z.number().int().positive()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined || ms <= 0 || ms > 366 * 86_400_000) {
      ctx.addIssue({ code: 'custom', message: 'must be a positive duration ("90s", "15m", "1h", "7d") of at most a year' });
      return z.NEVER;
    }
    return ms;
  });
const REVOKE_TARGETS = ['tenant', 'session', 'principal', 'jti'] as const;
export const revokeBody = z
  .object({
    tenant: idSchema.optional(),
    session: targetId.optional(),
    principal: targetId.optional(),
    jti: targetId.optional(),
    reason: reason.optional(),
    force: z.boolean().optional(),
    ttl: ttl.optional(),
  })
  .strict()
  .refine((body) => REVOKE_TARGETS.filter((k) => body[k] !== undefined).length === 1, `give exactly one of ${REVOKE_TARGETS.join(', ')}`)
  // The same rule for the OpenAPI document, from the same list: exactly one target key present.
  .meta({ oneOf: REVOKE_TARGETS.map((k) => ({ required: [k] })) });
// A tenant restore needs no reason (it was the only restore, and admits only new tokens); a lift does.
const RESTORE_TARGETS = ['tenant', 'principal', 'session'] as const;
export const restoreBody = z
  .object({ tenant: idSchema.optional(), principal: targetId.optional(), session: targetId.optional(), reason: reason.optional() })
  .strict()
  .refine((body) => RESTORE_TARGETS.filter((k) => body[k] !== undefined).length === 1, 'give exactly one of tenant, principal, session (a token is not restored: get a new one)')
  // Exactly one target, as the kill switch requires; said here too so the OpenAPI document has it
  // (a lift of a principal or session revocation also needs a reason that says something).
  .meta({ oneOf: RESTORE_TARGETS.map((k) => ({ required: [k] })), anyOf: [{ required: ['tenant'] }, { required: ['reason'], properties: { reason: { pattern: '\\S' } } }] });
export const revocationsQuery = z.object({ kind: z.enum(['tenant', 'principal', 'session', 'jti']).optional(), tenant: idSchema.optional() }).strict();
export const quarantinesQuery = z.object({ tenant: idSchema.optional() }).strict();
export const liftQuarantineBody = z.object({ session: targetId, tenant: idSchema.optional(), reason: reason.regex(/\S/, 'must say why (it is audited)') }).strict();
// Why the operator decided, for the audit record (optional); strict, so a field a client expects to matter (a tenant) is refused, not ignored.
export const decideBody = z.object({ reason: z.string().max(500).optional() }).strict();
// A reload reads the broker's own policy file: a policy is never uploaded over HTTP.
export const reloadBody = z.object({}).strict();
export const rotateBody = z.object({}).strict();
export const approvalsQuery = z.object({ tenant: idSchema }).strict();
// Any string: an id the policy does not have is a 404 naming it (knownTenant), not a 400.
export const tenantParams = z.object({ id: z.string().min(1) });
export const approvalParams = z.object({ id: z.string().min(1), decision: z.enum(['approve', 'deny']) });

export interface OperatorRouteDeps {
  policy: () => Policy;
  killSwitch: ReturnType<typeof createKillSwitch>;
  restore: ReturnType<typeof createRestore>;
  quarantines: ReturnType<typeof createQuarantineReview>;
  revocations: Pick<RevocationStore, 'isTenantRevoked' | 'list'>;
  sessions: Pick<SessionStore, 'liveSessions'>;
  quotas: Pick<QuotaStore, 'usage'>;
  budgets: Pick<BudgetStore, 'usage'>;
  approvals: Pick<ApprovalStore, 'decide' | 'listPending'>;
  /** Opens a pending approval's sealed arguments for the operator (approval-view.ts). */
  showApproval: ShowApproval;
  audit: Pick<AuditLog, 'append' | 'locked'>;
  rotateKeys: () => Promise<{ kid: string }>;
  reloadPolicy: (operator: string) => Promise<ReloadResult>;
  metrics: BrokerMetrics;
  clock: Clock;
  logger: Logger;
}

/** The operator API: kill switch, tenant status, approvals, key rotation (the audit routes are in audit.ts). */
export function operatorRoutes(deps: OperatorRouteDeps): Router {
  const router = Router();
  const operator = operatorOf;
  const knownTenant = knownTenantOf(deps.policy);

  router.post('/v1/revoke', async (req, res) => {
    try {
      const { ttl: ttlMs, ...body } = parseBody(revokeBody, req.body);
      const result = await deps.killSwitch.revoke({ ...body, ...(ttlMs === undefined ? {} : { ttlMs }), operator: operator(res) });
      deps.metrics.revocations.inc({ kind: Object.keys(result.revoked)[0] ?? 'unknown' });
      deps.logger.info({ operator: operator(res), revoked: result.revoked, leases: result.upstream_leases_revoked }, 'revoked');
      res.json(result);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/restore', async (req, res) => {
    try {
      const body = parseBody(restoreBody, req.body);
      const result = await deps.restore({ ...body, operator: operator(res) });
      deps.logger.info({ operator: operator(res), restored: result }, 'restored');
      res.json(result);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  // Revocations in force now; an expired one is not listed (and no longer denies).
  router.get('/v1/revocations', async (req, res) => {
    try {
      const query = parseBody(revocationsQuery, { ...req.query });
      if (query.tenant !== undefined) knownTenant(query.tenant);
      const all = await deps.revocations.list(deps.clock.now()).catch((err) => {
        throw new BrokerError('state_unavailable', 'revocation state is unavailable', { cause: err });
      });
      const revocations = all
        .map(listingOf)
        .filter((r) => (query.kind === undefined || r.kind === query.kind) && (query.tenant === undefined || r.tenant === query.tenant))
        .sort((a, b) => a.revoked_at.localeCompare(b.revoked_at));
      res.json({ revocations });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/v1/quarantines', async (req, res) => {
    try {
      const { tenant } = parseBody(quarantinesQuery, { ...req.query });
      res.json({ quarantines: await deps.quarantines.list(tenant === undefined ? undefined : knownTenant(tenant)) });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/quarantines/lift', async (req, res) => {
    try {
      const body = parseBody(liftQuarantineBody, req.body);
      const result = await deps.quarantines.lift({ ...body, ...(body.tenant === undefined ? {} : { tenant: knownTenant(body.tenant) }), operator: operator(res) });
      deps.logger.info({ operator: operator(res), tenant: result.tenant, session: result.session }, 'quarantine lifted');
      res.json(result);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/v1/tenants/:id', async (req, res) => {
    try {
      const tenant = knownTenant(parseBody(tenantParams, { ...req.params }).id);
      const [revoked, live, usage] = await Promise.all([
        deps.revocations.isTenantRevoked(tenant),
        deps.sessions.liveSessions(tenant, deps.clock.now()),
        deps.quotas.usage(tenant),
      ]);
      const tenantPolicy = deps.policy().tenants[tenant]!;
      const limits = tenantPolicy.quotas;
      const now = deps.clock.now();
      const budget = tenantPolicy.budgets ? await budgetUse(tenantPolicy.budgets, await deps.budgets.usage(tenantBudgetKey(tenant), now), now) : null;
      // A stream the writer refuses (its chain broke) degrades this tenant alone: `bulkhead audit seal` recovers it.
      const locked = deps.audit.locked?.().get(tenant);
      const audit = locked ? { state: 'locked', problem: locked.problem, since: locked.since } : { state: 'ok' };
      res.json({ tenant, revoked, live_sessions: live, quota: { ...usage, calls_per_minute: limits.calls_per_minute, concurrency: limits.concurrency }, budget, audit });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  // What an operator needs to decide: the call, and its effective arguments opened from their seal.
  // The answer is never logged (the request log keeps no bodies).
  router.get('/v1/approvals', async (req, res) => {
    try {
      const { tenant } = parseBody(approvalsQuery, { ...req.query });
      const now = deps.clock.now();
      const pending = await deps.approvals.listPending(knownTenant(tenant), now);
      const approvals = await Promise.all(pending.map((a) => deps.showApproval(a, now)));
      res.set('cache-control', 'no-store');
      res.json({ tenant, approvals });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/approvals/:id/:decision', async (req, res) => {
    try {
      const { reason } = parseBody(decideBody, req.body);
      const params = approvalParams.safeParse({ ...req.params });
      if (!params.success) throw new BrokerError('not_found', 'use /v1/approvals/:id/approve or /v1/approvals/:id/deny');
      const decision = params.data.decision === 'approve' ? 'approved' : 'denied';
      const approval = await deps.approvals.decide(params.data.id, decision, operator(res), deps.clock.now());
      if (!approval) throw new BrokerError('not_found', 'no pending approval with that id (unknown, expired or already decided)');
      await deps.audit.append(approval.tenant, {
        type: 'approval',
        operator: operator(res),
        status: decision,
        session: approval.session,
        principal: approval.principal,
        tool: approval.tool,
        arguments_mac: approval.arguments_mac,
        detail: approval.id,
        ...(reason ? { reason: reason.slice(0, 200) } : {}),
      });
      res.json({ id: approval.id, status: approval.status, tenant: approval.tenant, tool: approval.tool });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/policy/reload', async (req, res) => {
    try {
      parseBody(reloadBody, req.body);
      res.json(await deps.reloadPolicy(operator(res)));
    } catch (err) {
      const refused = err instanceof PolicyError ? new BrokerError('policy_invalid', err.message, { details: { issues: err.issues.length ? err.issues : [err.message] } }) : err;
      sendError(req, res, refused, deps.logger);
    }
  });

  router.post('/v1/keys/rotate', async (req, res) => {
    try {
      parseBody(rotateBody, req.body);
      const result = await deps.rotateKeys();
      deps.logger.info({ operator: operator(res), kid: result.kid }, 'signing keys rotated');
      res.json({ rotated: true, current_kid: result.kid });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  return router;
}

/** Each configured window's use, limit and reset time, as the operator API reports a tenant's budget. */
function budgetUse(limits: { hourly?: number; daily?: number }, use: { hourly: number; daily: number }, now: number) {
  const window = (name: 'hourly' | 'daily', limit: number | undefined) =>
    limit === undefined ? undefined : { used: use[name], limit, resets_at: new Date(now + secondsUntilReset(name, now) * 1000).toISOString() };
  return { hourly: window('hourly', limits.hourly), daily: window('daily', limits.daily) };
}
