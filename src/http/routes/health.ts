import { Router } from 'express';
import type { Registry } from 'prom-client';

export interface HealthDeps {
  /** Each named dependency's readiness; /readyz is 200 only when all are true. */
  readiness: () => Promise<Record<string, boolean>>;
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
    const checks = await deps.readiness().catch(() => ({ readiness: false }));
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks, ...(deps.policyVersion ? { policy_version: deps.policyVersion() } : {}) });
  });
  router.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', deps.registry.contentType);
    res.send(await deps.registry.metrics());
  });
  return router;
}
