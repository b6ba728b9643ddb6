import { randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AllowDecision, Authorizer } from '../../authorize/authorizer';
import type { createCompletion } from '../../authorize/completion';
import { allowedTools } from '../../authorize/allowed-tools';
import { BrokerError } from '../../errors';
import type { BrokerMetrics } from '../../observability/metrics';
import type { Policy } from '../../policy/schema';
import type { CallContextSigner } from '../../tokens/call-context';
import { parseBody } from '../parse-body';
import type { TokenDenies } from '../../audit/token-denies';
import { sendDeny, sendError } from '../respond';

const callId = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'must be 1-128 characters of letters, digits, ".", "_", ":" or "-"');
const token = z.string().min(1).max(8192);
const tenantClaim = z.string().max(256).optional();

const authorizeBody = z
  .object({
    token,
    tool: z.string().min(1).max(128),
    // Checked in place, not rebuilt: z.record copies into a fresh object and silently drops an own
    // "__proto__" key, so a tenant id hidden under it would be neither checked nor refused.
    arguments: z.custom<Record<string, unknown>>((v) => v !== null && typeof v === 'object' && !Array.isArray(v), 'expected an object').default({}),
    call_id: callId.optional(),
    // Accepted only so that a differing value can be denied as tenant_override rather than as a typo.
    tenant: tenantClaim,
    tenant_id: tenantClaim,
    tenantId: tenantClaim,
    tid: tenantClaim,
  })
  .strict();

const completeBody = z
  .object({
    call_id: callId,
    status: z.enum(['success', 'error']),
    records: z.number().int().nonnegative().optional(),
    usage: z.object({ cost: z.number().nonnegative().finite().optional(), tokens: z.number().int().nonnegative().optional() }).strict().optional(),
  })
  .strict();

const manifestBody = z.object({ token }).strict();

export interface ServerRouteDeps {
  policy: () => Policy;
  authorizer: Authorizer;
  complete: ReturnType<typeof createCompletion>;
  metrics: BrokerMetrics;
  logger: Logger;
  /** Records a body too malformed to read a token from (security stream); absent in tests that do not look. */
  refusals?: Pick<TokenDenies, 'withoutTenant'>;
  /** Signs the call context of an allow whose tool names a downstream service; absent: none is added. */
  callContext?: CallContextSigner;
}

/**
 * The widest scope a token of this principal for this server could be issued with: the server's tools,
 * and for a principal from the tenant's IdP (not listed in policy) only what `idp.scope` lets a token carry.
 */
function grantableScope(policy: Policy, tenantId: string, principal: string, server: string): string[] {
  const tools = Object.hasOwn(policy.servers, server) ? policy.servers[server]!.tools : [];
  const tenant = Object.hasOwn(policy.tenants, tenantId) ? policy.tenants[tenantId]! : undefined;
  const idpScope = tenant && !Object.hasOwn(tenant.principals, principal) ? tenant.idp?.scope : undefined;
  return idpScope ? tools.filter((tool) => idpScope.includes(tool)) : tools;
}

/**
 * The allow answer, with `call_context` when the tool's policy names a downstream service. Signed after
 * the allow was decided (and audited): the assertion adds nothing the decision did not already grant. If
 * it cannot be signed, the call is closed at once (its concurrency slot freed) and refused fail closed.
 */
async function withCallContext(deps: ServerRouteDeps, server: string, allowed: AllowDecision): Promise<AllowDecision & { call_context?: string }> {
  const tenant = deps.policy().tenants[allowed.tenant];
  const audience = tenant && Object.hasOwn(tenant.tools, allowed.tool) ? tenant.tools[allowed.tool]!.downstream?.audience : undefined;
  if (!deps.callContext || audience === undefined) return allowed;
  try {
    return { ...allowed, call_context: await deps.callContext.sign(allowed, { server, audience }) };
  } catch (err) {
    await deps.complete({ server, call_id: allowed.call_id, status: 'error' }).catch(() => undefined);
    throw new BrokerError('state_unavailable', 'the call context could not be signed; nothing was allowed', { cause: err });
  }
}

/** The endpoints an authenticated MCP server calls around every tool execution. */
export function serverRoutes(deps: ServerRouteDeps): Router {
  const router = Router();

  /**
   * The body, or its bad_request recorded in the security stream first: no token was read, so no
   * tenant is known. The server is (it authenticated); a token-shaped field is kept as its fingerprint.
   */
  async function parsedOrRecorded<T>(schema: z.ZodType<T, unknown>, req: Request, res: Response, endpoint: string, call_id?: string): Promise<T> {
    try {
      return parseBody(schema, req.body);
    } catch (err) {
      const sent = (req.body as { token?: unknown } | undefined)?.token;
      const token = typeof sent === 'string' && sent.length > 0 && sent.length <= 16_384 ? sent : undefined;
      // Fixed text: the parser's message may quote key names the caller chose.
      await deps.refusals?.withoutTenant('bad_request', 'request body is malformed', { endpoint, server: res.locals.server as string, ...(call_id && /^[A-Za-z0-9._:-]{1,128}$/.test(call_id) ? { call_id } : {}) }, token).catch(() => undefined);
      throw err;
    }
  }

  router.post('/v1/authorize', async (req: Request, res: Response) => {
    const started = process.hrtime.bigint();
    // A deny names the call it refused: the caller's id as sent (even if malformed), else one made here.
    let callId = typeof req.body?.call_id === 'string' ? (req.body.call_id as string).slice(0, 128) : randomUUID();
    let decision: 'allow' | 'deny' = 'deny';
    try {
      const body = await parsedOrRecorded(authorizeBody, req, res, '/v1/authorize', callId);
      callId = body.call_id ?? callId;
      const claimedTenants = [body.tenant, body.tenant_id, body.tenantId, body.tid].filter((t): t is string => t !== undefined);
      const allowed = await deps.authorizer.authorize({
        server: res.locals.server as string,
        token: body.token,
        tool: body.tool,
        arguments: body.arguments,
        call_id: callId,
        callIdFromCaller: body.call_id !== undefined,
        claimedTenants,
      });
      const answer = await withCallContext(deps, res.locals.server as string, allowed);
      decision = 'allow';
      res.setHeader('Cache-Control', 'no-store');
      res.status(200).json(answer);
    } catch (err) {
      if ((err as { reason?: string }).reason === 'bad_request') deps.metrics.decisions.inc({ decision: 'deny', reason: 'bad_request' });
      sendDeny(req, res, err, deps.logger, callId);
    } finally {
      deps.metrics.authorizeSeconds.observe({ decision }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  });

  router.post('/v1/complete', async (req, res) => {
    try {
      const body = parseBody(completeBody, req.body);
      res.json(await deps.complete({ server: res.locals.server as string, ...body }));
    } catch (err) {
      sendError(req, res, err, deps.logger);
    }
  });

  router.post('/v1/manifest', async (req, res) => {
    try {
      const body = await parsedOrRecorded(manifestBody, req, res, '/v1/manifest');
      const server = res.locals.server as string;
      const verified = await deps.authorizer.verifyLive(server, body.token, '/v1/manifest');
      const policy = deps.policy();
      const token = { tenant: verified.tenant, principal: verified.principal, audience: server };
      const tools = allowedTools(policy, { ...token, scope: verified.scope });
      // What policy would grant with a wider scope: the MCP wrapper answers those with a 403 insufficient_scope
      // step-up challenge instead of tool_not_allowed. Only this principal's own grants, for a live token.
      const stepUp = allowedTools(policy, { ...token, scope: grantableScope(policy, verified.tenant, verified.principal, server) }).filter((tool) => !tools.includes(tool));
      res.json({ tenant: verified.tenant, principal: verified.principal, tools, step_up: stepUp });
    } catch (err) {
      sendDeny(req, res, err, deps.logger);
    }
  });

  return router;
}
