import { Router } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import { RootNotDestroyed } from '../../compose/tenant-shred';
import { BrokerError } from '../../errors';
import type { Policy } from '../../policy/schema';
import { countersign } from '../../selftest/countersign';
import { deleteTenant, type TenantDeleteDeps } from '../../tenants/tenant-delete';
import { exportTenant, type TenantExportDeps } from '../../tenants/tenant-export';
import type { AuditSigner } from '../../audit/audit-keys';
import { knownTenantOf, operatorOf } from '../operator-context';
import { parseBody } from '../parse-body';
import { sendError } from '../respond';

export const exportBody = z.object({ include_secrets: z.boolean().optional() }).strict();
// The API's --yes: the tenant id again, so a delete is never one mistyped path away.
// purge_audit: remove the audit stream too, once an export covers its last record (tenant-delete.ts).
export const deleteBody = z.object({ confirm: z.string().max(64), purge_audit: z.boolean().optional() }).strict();
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits');
// A run id is the selftest's own short id: no free text in what the audit key signs.
export const countersignBody = z.object({ digest: sha256Hex, run_id: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be 1-64 letters, digits, ".", "_" or "-"'), ok: z.boolean() }).strict();

export interface TenantRouteDeps {
  policy: () => Policy;
  export: Omit<TenantExportDeps, 'policy'>;
  delete: Omit<TenantDeleteDeps, 'onStep'>;
  countersign: { issuer: string; signer: () => AuditSigner; now: () => number };
  logger: Logger;
}

/**
 * A tenant's data lifecycle (export, delete) and the selftest countersignature, for operators. Both
 * tenant routes act on a tenant the live policy still has (a delete is resumed before the tenant is
 * taken out of the policy file).
 */
export function tenantRoutes(deps: TenantRouteDeps): Router {
  const router = Router();
  const knownTenant = knownTenantOf(deps.policy);
  // One delete per tenant at a time in this process; a second waits for the first and then finds it done.
  const deleting = new Map<string, Promise<unknown>>();

  router.post('/v1/tenants/:id/export', async (req, res) => {
    try {
      const body = parseBody(exportBody, req.body);
      const tenant = knownTenant(String(req.params.id));
      const exported = await exportTenant({ ...deps.export, policy: deps.policy }, tenant, { operator: operatorOf(res), includeSecrets: body.include_secrets === true });
      deps.logger.info({ operator: operatorOf(res), tenant, include_secrets: body.include_secrets === true }, 'tenant exported');
      res.json(exported);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/tenants/:id/delete', async (req, res) => {
    try {
      const body = parseBody(deleteBody, req.body);
      const tenant = knownTenant(String(req.params.id));
      if (body.confirm !== tenant) throw new BrokerError('bad_request', `confirm must be the tenant id ("${tenant}") to delete it`);
      const previous = deleting.get(tenant) ?? Promise.resolve();
      const run = previous.catch(() => undefined).then(() => deleteTenant(deps.delete, tenant, operatorOf(res), { purgeAudit: body.purge_audit === true }));
      deleting.set(tenant, run);
      const result = await run.finally(() => {
        if (deleting.get(tenant) === run) deleting.delete(tenant);
      });
      deps.logger.info({ operator: operatorOf(res), tenant, resumed: result.resumed, purged_audit: result.purge !== undefined }, 'tenant deleted');
      res.json(result);
    } catch (err) {
      const typed =
        err instanceof RootNotDestroyed
          ? new BrokerError('upstream_unavailable', `${err.message}: disable or delete that key in the tenant's KMS, then run the delete again (it resumes)`, { cause: err })
          : err;
      sendError(req, res, typed, deps.logger);
    }
  });

  router.post('/v1/selftest/countersign', (req, res) => {
    try {
      const body = parseBody(countersignBody, req.body);
      const signed = countersign(body, deps.countersign.issuer, deps.countersign.now(), deps.countersign.signer());
      deps.logger.info({ operator: operatorOf(res), run_id: body.run_id, digest: body.digest, ok: body.ok }, 'selftest report countersigned');
      res.json(signed);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  return router;
}
