import { z } from 'zod';
import { parseBody } from './parse-body';

/**
 * The bodies of the three endpoints an MCP server calls around every tool call. The zod schemas are the
 * contract (they name the field at fault in a 400 and feed the API docs); each has a hand-compiled twin
 * that only says "valid, here is the value" or "not sure". The twin runs first because it costs a
 * fraction of a schema walk; on any doubt the schema decides and words the answer, so the twin can
 * make a call faster but never change what is accepted. test/unit/server-bodies.test.ts checks the
 * twins against the schemas on valid, invalid and adversarial bodies.
 */

const CALL_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const callId = z.string().regex(CALL_ID, 'must be 1-128 characters of letters, digits, ".", "_", ":" or "-"');
const token = z.string().min(1).max(8192);
const tenantClaim = z.string().max(256).optional();

export const authorizeBody = z
  .object({
    token,
    tool: z.string().min(1).max(128),
    // Checked in place, not rebuilt: z.record copies into a fresh object and silently drops an own
    // "__proto__" key, so a tenant id hidden under it would be neither checked nor refused.
    arguments: z
      .custom<Record<string, unknown>>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), 'expected an object')
      .meta({ type: 'object', description: 'the tool arguments as the client sent them' })
      .default({}),
    call_id: callId.optional(),
    // Accepted only so that a differing value can be denied as tenant_override rather than as a typo.
    tenant: tenantClaim,
    tenant_id: tenantClaim,
    tenantId: tenantClaim,
    tid: tenantClaim,
  })
  .strict();

export const completeBody = z
  .object({
    call_id: callId,
    status: z.enum(['success', 'error']),
    records: z.number().int().nonnegative().optional(),
    usage: z.object({ cost: z.number().nonnegative().finite().optional(), tokens: z.number().int().nonnegative().optional() }).strict().optional(),
  })
  .strict();

export const manifestBody = z.object({ token }).strict();

export type AuthorizeBody = z.infer<typeof authorizeBody>;
export type CompleteBody = z.infer<typeof completeBody>;
export type ManifestBody = z.infer<typeof manifestBody>;

type Body = Record<string, unknown>;

const isObject = (v: unknown): v is Body => v !== null && typeof v === 'object' && !Array.isArray(v);
const isString = (v: unknown, min: number, max: number): v is string => typeof v === 'string' && v.length >= min && v.length <= max;
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isCallId = (v: unknown): v is string => typeof v === 'string' && CALL_ID.test(v);

const TENANT_CLAIMS = ['tenant', 'tenant_id', 'tenantId', 'tid'] as const;

/** The compiled twin of `authorizeBody`: the same value zod would return, or null to let zod decide. */
export function fastAuthorizeBody(body: Body): AuthorizeBody | null {
  let known = 0;
  const { token: t, tool, arguments: args, call_id: id } = body;
  if (!isString(t, 1, 8192) || !isString(tool, 1, 128)) return null;
  known += 2;
  const out: AuthorizeBody = { token: t, tool, arguments: {} };
  if (args !== undefined) {
    if (!isObject(args)) return null;
    out.arguments = args;
    known++;
  }
  if (id !== undefined) {
    if (!isCallId(id)) return null;
    out.call_id = id;
    known++;
  }
  for (const claim of TENANT_CLAIMS) {
    const value = body[claim];
    if (value === undefined) continue;
    if (!isString(value, 0, 256)) return null;
    out[claim] = value;
    known++;
  }
  // .strict(): any other key is zod's to refuse (and name).
  return Object.keys(body).length === known ? out : null;
}

export function fastCompleteBody(body: Body): CompleteBody | null {
  let known = 2;
  const { call_id: id, status, records, usage } = body;
  if (!isCallId(id) || (status !== 'success' && status !== 'error')) return null;
  const out: CompleteBody = { call_id: id, status };
  if (records !== undefined) {
    if (!isCount(records)) return null;
    out.records = records;
    known++;
  }
  if (usage !== undefined) {
    if (!isObject(usage)) return null;
    const { cost, tokens } = usage;
    const outUsage: NonNullable<CompleteBody['usage']> = {};
    let usageKeys = 0;
    if (cost !== undefined) {
      if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) return null;
      outUsage.cost = cost;
      usageKeys++;
    }
    if (tokens !== undefined) {
      if (!isCount(tokens)) return null;
      outUsage.tokens = tokens;
      usageKeys++;
    }
    if (Object.keys(usage).length !== usageKeys) return null;
    out.usage = outUsage;
    known++;
  }
  return Object.keys(body).length === known ? out : null;
}

export function fastManifestBody(body: Body): ManifestBody | null {
  const { token: t } = body;
  return isString(t, 1, 8192) && Object.keys(body).length === 1 ? { token: t } : null;
}

/** The body as `schema` reads it: the compiled twin when it is sure, else the schema (which words any 400). */
export function readBody<T>(schema: z.ZodType<T, unknown>, fast: (body: Body) => T | null, body: Body | undefined): T {
  return (body !== undefined && fast(body)) || parseBody(schema, body);
}
