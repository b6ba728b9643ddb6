import { Router } from 'express';
import type { Registry } from 'prom-client';
import type { Readiness } from '../../observability/readiness';

export interface HealthDeps {
  /**
   * Each named dependency's readiness: /readyz is 200 only when all are ready, that is when authorize
   * does not fail closed for everyone. A failed check says what failed, never for which tenant.
   */
  readiness: () => Promise<Record<string, Readiness | boolean>>;
  /**
   * Tenants this replica refuses on their own (a broken audit chain), counted: they are degraded, the
   * others are served, so readiness stays up. Which tenants is in the operator API, never here.
   */
  degradedTenants?: () => number;
  /** The policy version this replica serves, reported beside the checks. */
  policyVersion?: () => string;
  registry: Registry;
}

export function healthRoutes(deps: HealthDeps): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const answers = await deps.readiness().catch((): Record<string, Readiness> => ({ readiness: { ok: false, problem: 'the readiness checks themselves failed' } }));
    const checks: Record<string, boolean> = {};
    const problems: Record<string, string> = {};
    for (const [name, answer] of Object.entries(answers)) {
      const ok = typeof answer === 'boolean' ? answer : answer.ok;
      checks[name] = ok;
      if (!ok) problems[name] = typeof answer === 'boolean' ? 'not ready' : (answer as { problem: string }).problem;
    }
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({
      status: ready ? 'ready' : 'not_ready',
      checks,
      ...(ready ? {} : { problems }),
      ...(deps.degradedTenants ? { degraded_tenants: deps.degradedTenants() } : {}),
      ...(deps.policyVersion ? { policy_version: deps.policyVersion() } : {}),
    });
  });
  router.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', deps.registry.contentType);
    res.send(await deps.registry.metrics());
  });
  return router;
}
