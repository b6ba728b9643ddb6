import { Router } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditEvent, AuditLog, AuditRecord } from '../../audit/audit-log';
import type { AuditKeySet } from '../../audit/audit-keys';
import { HEAD_PATTERN, parseHead, type AuditEvidence } from '../../audit/audit-evidence';
import type { AuditBundle } from '../../audit/bundle';
import { checkpointProblem } from '../../audit/checkpoint';
import type { CheckpointStore } from '../../audit/checkpoint-store';
import type { Checkpointer } from '../../audit/checkpointer';
import { searchAudit, type AuditFilter } from '../../audit/search';
import type { Policy } from '../../policy/schema';
import { SECURITY_STREAM, streamIdSchema } from '../../audit/security-stream';
import { knownTenantOf, operatorOf } from '../operator-context';
import { parseBody } from '../parse-body';
import { sendError } from '../respond';

const text = z.string().min(1).max(256);
const isoTime = z.iso.datetime({ offset: true }).transform((value) => Date.parse(value));
// A tenant, or the broker's security stream (`_security`): operators read and verify it like a tenant's.
const tenantQuery = { tenant: streamIdSchema };
const range = { from: isoTime.optional(), to: isoTime.optional() };
// A query's integer: z.coerce alone reads an empty `after=` as 0; empty is refused instead (found by schemathesis).
const queryInteger = <T extends z.ZodType>(coerced: T) => z.preprocess((value) => (value === '' ? Number.NaN : value), coerced);
export const searchQuery = z
  .object({
    ...tenantQuery,
    ...range,
    after: queryInteger(z.coerce.number().int().nonnegative()).optional(),
    limit: queryInteger(z.coerce.number().int().min(1).max(10_000)).optional(),
    type: text.optional(),
    decision: z.enum(['allow', 'deny', 'intent']).optional(),
    reason: text.optional(),
    tool: text.optional(),
    principal: text.optional(),
    session: text.optional(),
    server: text.optional(),
    request_id: text.optional(),
  })
  .strict();
export const verifyQuery = z
  .object({ ...tenantQuery, expect_head: z.string().regex(HEAD_PATTERN, 'must be SEQ:HASH (a seq and a 64-hex-digit hash)').optional() })
  .strict();
export const exportQuery = z.object({ ...tenantQuery, ...range }).strict();
export const checkpointsQuery = z.object(tenantQuery).strict();
export const correlateQuery = z.object({ request_id: text }).strict();
export const sealBody = z.object({ tenant: streamIdSchema, reason: z.string().min(1).max(500) }).strict();

export interface AuditRouteDeps {
  policy: () => Policy;
  log: Pick<AuditLog, 'read'>;
  evidence: AuditEvidence;
  checkpointer: Pick<Checkpointer, 'sealNow'>;
  checkpoints: Pick<CheckpointStore, 'list'>;
  keys: () => AuditKeySet;
  /** The broker's audit wrapper: records made here carry the operator's request id like any other. */
  append: (tenant: string, event: AuditEvent) => Promise<unknown>;
  exportBundle: (tenant: string, range: { from?: number; to?: number }) => Promise<AuditBundle>;
  /** Seals a locked stream (the broker signs the seal and checkpoints it). */
  seal: (tenant: string, operator: string, reason: string) => Promise<AuditRecord>;
  logger: Logger;
}

/**
 * The operator's audit API: search one tenant's stream, verify its evidence, export a bundle, and the
 * one sanctioned join from a platform request id to the tenant record that holds it. Export and
 * correlate are themselves recorded in the stream they read.
 */
export function auditRoutes(deps: AuditRouteDeps): Router {
  const router = Router();
  const operator = operatorOf;
  const knownPolicyTenant = knownTenantOf(deps.policy);
  const knownTenant = (stream: string) => (stream === SECURITY_STREAM ? stream : knownPolicyTenant(stream));

  router.get('/v1/audit', async (req, res) => {
    try {
      const { tenant, after, limit, ...filter } = parseBody(searchQuery, { ...req.query });
      const page = await searchAudit(deps.log, knownTenant(tenant), filter satisfies AuditFilter, { after, limit: limit ?? 1000 });
      res.json({ tenant, ...page });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/v1/audit/verify', async (req, res) => {
    try {
      const query = parseBody(verifyQuery, { ...req.query });
      const expectHead = query.expect_head === undefined ? undefined : parseHead(query.expect_head);
      const tenant = knownTenant(query.tenant);
      // What this replica committed is signed first, so a live stream verifies as strictly as a stopped one.
      await deps.checkpointer.sealNow(tenant);
      res.json(await deps.evidence.verify(tenant, { expectHead, known: true }));
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  // The signed checkpoints of one stream: the ones that verify against the audit keys, and how many do not.
  router.get('/v1/audit/checkpoints', async (req, res) => {
    try {
      const tenant = knownTenant(parseBody(checkpointsQuery, { ...req.query }).tenant);
      const stored = await deps.checkpoints.list(tenant);
      const keys = deps.keys();
      const checkpoints = stored.filter((c) => checkpointProblem(c, tenant, keys) === null);
      res.json({ tenant, checkpoints, invalid: stored.length - checkpoints.length });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/v1/audit/export', async (req, res) => {
    try {
      const query = parseBody(exportQuery, { ...req.query });
      const tenant = knownTenant(query.tenant);
      await deps.checkpointer.sealNow(tenant);
      const bundle = await deps.exportBundle(tenant, { from: query.from, to: query.to });
      const { first_seq, last_seq } = bundle.manifest.selection;
      // Recorded after the bundle is built: the export is evidence in the stream, not inside its own bundle.
      await deps.append(tenant, { type: 'export', operator: operator(res), detail: `records ${first_seq}..${last_seq}` });
      res.json(bundle);
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  // The way back for a tenant whose stream broke: a signed seal records the break; nothing is edited.
  router.post('/v1/audit/seal', async (req, res) => {
    try {
      const body = parseBody(sealBody, req.body);
      const tenant = knownTenant(body.tenant);
      const record = await deps.seal(tenant, operator(res), body.reason);
      const { seal } = record;
      deps.logger.warn({ operator: operator(res) }, 'audit stream sealed after a break; the tenant is served again');
      res.json({ tenant, seq: record.seq, hash: record.hash, ts: record.ts, verified_seq: seal!.verified_seq, break_seq: seal!.break_seq, found: seal!.found });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.get('/v1/audit/correlate', async (req, res) => {
    try {
      const { request_id } = parseBody(correlateQuery, { ...req.query });
      const matches: Array<{ tenant: string; seq: number; type: string; ts: string; hash: string }> = [];
      for (const tenant of await deps.evidence.tenants()) {
        const { events } = await searchAudit(deps.log, tenant, { request_id }, { limit: 100 });
        for (const e of events) matches.push({ tenant, seq: e.seq, type: e.type, ts: e.ts, hash: e.hash });
      }
      const tenants = [...new Set(matches.map((m) => m.tenant))];
      // The join is evidence in every stream it reached into; a search that found nothing revealed nothing.
      await Promise.all(tenants.map((tenant) => deps.append(tenant, { type: 'correlate', operator: operator(res), detail: `request ${request_id}` })));
      deps.logger.info({ operator: operator(res), correlated: request_id, streams: tenants.length }, 'audit correlate');
      res.json({ request_id, matches });
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  return router;
}

/** Public: the audit keys, every one that ever signed, for auditors to pin. */
export function auditKeysRoute(keys: () => AuditKeySet): Router {
  const router = Router();
  router.get('/.well-known/bulkhead-audit-keys.json', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json(keys());
  });
  return router;
}
