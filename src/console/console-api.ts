import { Router, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { ApprovalStore } from '../approvals/approval-store';
import type { ShowApproval } from '../approvals/approval-view';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import { sendError } from '../http/respond';
import { currentSession } from './console-guard';
import type { createMetricsHistory } from './metrics-history';

export interface ConsoleApiDeps {
  /** The operator API's router, dispatched in-process with the signed-in operator as the caller. */
  operatorApi: RequestHandler;
  policy: () => Policy;
  approvals: Pick<ApprovalStore, 'listPending'>;
  showApproval: ShowApproval;
  policyVersion?: () => string;
  history: ReturnType<typeof createMetricsHistory>;
  clock: Clock;
  logger: Logger;
}

/** At most this many approvals in the inbox (across tenants, newest first). */
const INBOX_LIMIT = 500;

/**
 * The console's JSON API, behind a session and CSRF check (see console-routes.ts). Two kinds of route:
 *
 * - `/api/op/v1/...` is the operator API itself, run in-process with `res.locals.operator` set to the
 *   signed-in operator, so a revoke, a restore or an approval decided in the browser takes exactly the
 *   path (validation, durability, audit record naming the operator) it takes from the CLI. A route this
 *   broker does not have answers 404 with `endpoint: "missing"`, which the page shows as "not available
 *   on this broker" — views for endpoints other issues add plug in without a console change here.
 * - a few reads the operator API has no single answer for: the tenant list, the inbox across tenants,
 *   the metrics history for the charts.
 */
export function consoleApi(deps: ConsoleApiDeps): Router {
  const router = Router();

  router.get('/api/overview', (_req, res) => {
    res.json({ operator: currentSession(res).operator, policy_version: deps.policyVersion?.() ?? null, tenants: Object.keys(deps.policy().tenants).sort() });
  });

  router.get('/api/inbox', async (req, res) => {
    try {
      const now = deps.clock.now();
      const tenants = Object.keys(deps.policy().tenants);
      const lists = await Promise.all(
        tenants.map((tenant) =>
          deps.approvals.listPending(tenant, now).catch((err) => {
            throw new BrokerError('state_unavailable', 'pending approvals could not be read', { cause: err });
          }),
        ),
      );
      const newest = lists
        .flat()
        .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1))
        .slice(0, INBOX_LIMIT);
      const approvals = await Promise.all(newest.map((a) => deps.showApproval(a, now)));
      res.json({ now: new Date(now).toISOString(), approvals });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/api/metrics', async (req, res) => {
    try {
      res.json({ samples: await deps.history.read() });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.use('/api/op', requireTypedBack(), (req, res, next) => {
    res.locals.operator = currentSession(res).operator;
    deps.operatorApi(req, res, (err?: unknown) => {
      if (err && err !== 'route' && err !== 'router') return next(err);
      next(new BrokerError('not_found', `this broker has no ${req.method} ${req.path}`, { details: { endpoint: 'missing' } }));
    });
  });

  router.use('/api', (req, _res, next) => next(new BrokerError('not_found', `no console route for ${req.method} ${req.path}`)));
  return router;
}

const TARGETS = ['tenant', 'principal', 'session', 'jti'] as const;

/**
 * A kill-switch action (revoke, restore or lift, quarantine release) from the console names its target twice: once in the field, once typed back
 * by the operator in `confirm`. The page will not send a mismatch, and the server does not rely on
 * that. `confirm` is removed before the operator API (which refuses unknown fields) sees the body.
 */
function requireTypedBack(): RequestHandler {
  return (req, _res, next) => {
    const lift = req.path === '/v1/quarantines/lift';
    if (req.method !== 'POST' || (req.path !== '/v1/revoke' && req.path !== '/v1/restore' && !lift)) return next();
    const body = (req.body ?? {}) as Record<string, unknown>;
    // A quarantine lift names its tenant too; the session is the target typed back.
    const target = lift ? body.session : TARGETS.map((k) => body[k]).find((v) => typeof v === 'string');
    if (typeof target !== 'string' || body.confirm !== target) {
      next(new BrokerError('bad_request', 'confirm: type the target again to confirm'));
      return;
    }
    if (req.path === '/v1/revoke' && (typeof body.reason !== 'string' || body.reason.trim() === '')) {
      next(new BrokerError('bad_request', 'reason: say why (it is kept with the revocation)'));
      return;
    }
    const { confirm: _confirm, ...forwarded } = body;
    req.body = forwarded;
    next();
  };
}
