import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AllowDecision, Authorizer } from '../authorize/authorizer';
import type { createCompletion } from '../authorize/completion';
import { allowedTools } from '../authorize/allowed-tools';
import { BrokerError } from '../errors';
import type { BrokerMetrics } from '../observability/metrics';
import { requestLineLogger } from '../observability/logger';
import { withRequestId } from '../observability/request-context';
import type { Policy } from '../policy/schema';
import type { CallContextSigner } from '../tokens/call-context';
import type { TokenDenies } from '../audit/token-denies';
import { identify, refuseUnauthenticated, type Identities, type OnUnauthenticated } from './authenticate';
import { bodyTypeError, hasBody } from './content-type';
import { readJsonObject } from './json-body';
import { bodyTooLarge, denyAnswer, errorAnswer, type Answer } from './respond';
import { authorizeBody, completeBody, fastAuthorizeBody, fastCompleteBody, fastManifestBody, manifestBody, readBody } from './server-bodies';

/**
 * POST /v1/authorize, /v1/complete and /v1/manifest: the endpoints an authenticated MCP server calls
 * around every tool execution, served on node:http directly. They run once or twice per tool call, so
 * they skip express's middleware chain and res.json, and read their bodies with a compiled validator;
 * every other route goes on to express on the same port (http/app.ts). What a request goes through is
 * what express gave it, in the same order: the request id and log line, the body's type and charset
 * (content-type.ts), the size limit, the strict JSON reader (json-body.ts), the request context, the
 * server's authentication (authenticate.ts), then the route; errors are worded by respond.ts.
 *
 * Bodies here are never compressed: a Content-Encoding other than identity is a 415.
 */
export interface ServerEndpointDeps {
  policy: () => Policy;
  authorizer: Authorizer;
  complete: ReturnType<typeof createCompletion>;
  metrics: BrokerMetrics;
  logger: Logger;
  servers: Identities;
  /** Bytes (broker.body_limit). */
  bodyLimit: number;
  /** Records callers whose server key did not authenticate (the security stream). */
  onUnauthenticated?: OnUnauthenticated;
  /** Records a body too malformed to read a token from (security stream); absent in tests that do not look. */
  refusals?: Pick<TokenDenies, 'withoutTenant'>;
  /** Signs the call context of an allow whose tool names a downstream service; absent: none is added. */
  callContext?: CallContextSigner;
}

type Route = 'authorize' | 'complete' | 'manifest';
/** The paths served here (POST only); http/app.ts authenticates the rest of what reaches them, the OpenAPI route test lists them. */
export const ENDPOINTS: Readonly<Record<Route, string>> = { authorize: '/v1/authorize', complete: '/v1/complete', manifest: '/v1/manifest' };

/**
 * The body as its schema reads it, or its bad_request recorded in the security stream first: no token
 * was read, so no tenant is known. The server is (it authenticated); a token-shaped field is kept as
 * its fingerprint only.
 */
async function readRecorded<T>(deps: ServerEndpointDeps, schema: Parameters<typeof readBody<T>>[0], fast: Parameters<typeof readBody<T>>[1], raw: Record<string, unknown> | undefined, endpoint: string, server: string, callId?: string): Promise<T> {
  try {
    return readBody(schema, fast, raw);
  } catch (err) {
    const sent = raw?.token;
    const token = typeof sent === 'string' && sent.length > 0 && sent.length <= 16_384 ? sent : undefined;
    // Fixed text: the parser's message may quote key names the caller chose.
    await deps.refusals?.withoutTenant('bad_request', 'request body is malformed', { endpoint, server, ...(callId && /^[A-Za-z0-9._:-]{1,128}$/.test(callId) ? { call_id: callId } : {}) }, token).catch(() => undefined);
    throw err;
  }
}

/** The request listener for these routes: true when it took the request, false to hand it to express. */
export type ServerEndpoints = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createServerEndpoints(deps: ServerEndpointDeps): ServerEndpoints {
  const routes: Record<Route, (server: string, body: Record<string, unknown> | undefined, requestId: string) => Promise<Reply>> = {
    authorize: (server, body, requestId) => authorize(deps, server, body, requestId),
    complete: (server, body) => complete(deps, server, body),
    manifest: (server, body, requestId) => manifest(deps, server, body, requestId),
  };

  const requestLines = requestLineLogger(deps.logger);

  return (req, res) => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const route = req.method === 'POST' ? routeOf(path) : undefined;
    if (route === undefined) return false;
    const started = process.hrtime.bigint();
    const requestId = randomUUID();
    // What the request's work notes for its log line (request-context.ts noteDenyReason).
    const locals: Record<string, unknown> = {};
    let server: string | undefined;
    const answer = (reply: Reply) => {
      send(res, requestId, reply);
      // Allow-list only, as for every route (http/app.ts): method, path without query, status, duration, ids,
      // and the reason code of a deny. No headers, no bodies.
      requestLines.info({ requestId, method: 'POST', path, status: reply.status, ms: Number(process.hrtime.bigint() - started) / 1e6, server, reason: locals.noted_reason ?? reply.reason }, 'request');
    };
    const fail = (err: unknown, body?: Record<string, unknown>) => {
      const context = { requestId, path, logger: deps.logger };
      // A deny before the route ran (body, authentication) still echoes the caller's call_id.
      answer(route === 'complete' ? errorAnswer(err, context) : denyAnswer(err, context, echoedCallId(body)));
    };
    const refused = bodyTypeError(req.headers, path) ?? encodingError(req.headers['content-encoding']);
    if (refused) {
      fail(refused);
      req.resume();
      return true;
    }
    readBytes(req, deps.bodyLimit).then(
      (bytes) => {
        let body: Record<string, unknown> | undefined;
        try {
          body = bytes === undefined ? undefined : readJsonObject(bytes);
        } catch (err) {
          fail(err);
          return;
        }
        const id = identify('server', deps.servers, req);
        if (id === null) {
          // Inside the request's context: the refusal's record names this request.
          void withRequestId(requestId, locals, () => refuseUnauthenticated('server', ENDPOINTS[route], body, deps.onUnauthenticated)).then((refusal) => fail(refusal, body));
          return;
        }
        server = id;
        withRequestId(requestId, locals, () => routes[route](id, body, requestId)).then(answer, (err: unknown) => fail(err, body));
      },
      (err: unknown) => {
        if (err instanceof BrokerError) fail(err);
        // Otherwise the client went away mid-body: there is no one to answer.
      },
    );
    return true;
  };
}

interface Reply extends Answer {
  noStore?: boolean;
}

/** Express matches routes case-insensitively and with an optional trailing slash; so does this. */
function routeOf(path: string): Route | undefined {
  const p = (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path).toLowerCase();
  if (p === '/v1/authorize') return 'authorize';
  if (p === '/v1/complete') return 'complete';
  if (p === '/v1/manifest') return 'manifest';
  return undefined;
}

function encodingError(encoding: string | undefined): BrokerError | null {
  if (encoding === undefined || encoding.toLowerCase() === 'identity') return null;
  return new BrokerError('bad_request', 'request body must not be compressed (Content-Encoding is not supported here)', { status: 415 });
}

/** The body's bytes (undefined for none), refused with a 413 past `limit`; rejects with a plain Error if the client goes away. */
function readBytes(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (!hasBody(req.headers)) {
    req.resume();
    return Promise.resolve(undefined);
  }
  if (Number(req.headers['content-length'] ?? 0) > limit) {
    req.resume();
    return Promise.reject(bodyTooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(bodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', reject);
    // 'close' follows every request; only one whose body never completed means the client went away
    // (no Error is made otherwise: capturing a stack on every call is not free).
    req.once('close', () => {
      if (!req.complete) reject(new Error('request closed before its body was read'));
    });
  });
}

function send(res: ServerResponse, requestId: string, reply: Reply): void {
  const json = JSON.stringify(reply.body);
  const headers: OutgoingHttpHeaders = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json), 'x-request-id': requestId };
  if (reply.retryAfter !== undefined) headers['retry-after'] = String(reply.retryAfter);
  if (reply.noStore) headers['cache-control'] = 'no-store';
  res.writeHead(reply.status, headers);
  res.end(json);
}

function echoedCallId(body: Record<string, unknown> | undefined): string | undefined {
  const id = body?.call_id;
  return typeof id === 'string' ? id.slice(0, 128) : undefined;
}

async function authorize(deps: ServerEndpointDeps, server: string, raw: Record<string, unknown> | undefined, requestId: string): Promise<Reply> {
  const started = process.hrtime.bigint();
  // A deny names the call it refused: the caller's id as sent (even if malformed), else one made here.
  let callId = echoedCallId(raw) ?? randomUUID();
  let decision: 'allow' | 'deny' = 'deny';
  try {
    const body = await readRecorded(deps, authorizeBody, fastAuthorizeBody, raw, '/v1/authorize', server, callId);
    callId = body.call_id ?? callId;
    const claimedTenants: string[] = [];
    for (const claim of [body.tenant, body.tenant_id, body.tenantId, body.tid]) if (claim !== undefined) claimedTenants.push(claim);
    const allowed = await deps.authorizer.authorize({
      server,
      token: body.token,
      tool: body.tool,
      arguments: body.arguments,
      call_id: callId,
      callIdFromCaller: body.call_id !== undefined,
      claimedTenants,
    });
    const answer = await withCallContext(deps, server, allowed);
    decision = 'allow';
    return { status: 200, body: answer as unknown as Record<string, unknown>, noStore: true };
  } catch (err) {
    if ((err as { reason?: string }).reason === 'bad_request') deps.metrics.decisions.inc({ decision: 'deny', reason: 'bad_request' });
    return denyAnswer(err, { requestId, path: '/v1/authorize', logger: deps.logger }, callId);
  } finally {
    deps.metrics.authorizeSeconds.observe({ decision }, Number(process.hrtime.bigint() - started) / 1e9);
  }
}

async function complete(deps: ServerEndpointDeps, server: string, raw: Record<string, unknown> | undefined): Promise<Reply> {
  const body = readBody(completeBody, fastCompleteBody, raw);
  return { status: 200, body: (await deps.complete({ server, ...body })) as unknown as Record<string, unknown> };
}

async function manifest(deps: ServerEndpointDeps, server: string, raw: Record<string, unknown> | undefined, requestId: string): Promise<Reply> {
  try {
    return await manifestOf(deps, server, raw);
  } catch (err) {
    // A refused manifest names no call.
    return denyAnswer(err, { requestId, path: '/v1/manifest', logger: deps.logger });
  }
}

async function manifestOf(deps: ServerEndpointDeps, server: string, raw: Record<string, unknown> | undefined): Promise<Reply> {
  const body = await readRecorded(deps, manifestBody, fastManifestBody, raw, '/v1/manifest', server);
  const verified = await deps.authorizer.verifyLive(server, body.token, '/v1/manifest');
  const policy = deps.policy();
  const token = { tenant: verified.tenant, principal: verified.principal, audience: server };
  const tools = allowedTools(policy, { ...token, scope: verified.scope });
  // What policy would grant with a wider scope: the MCP wrapper answers those with a 403 insufficient_scope
  // step-up challenge instead of tool_not_allowed. Only this principal's own grants, for a live token.
  const stepUp = allowedTools(policy, { ...token, scope: grantableScope(policy, verified.tenant, verified.principal, server) }).filter((tool) => !tools.includes(tool));
  return { status: 200, body: { tenant: verified.tenant, principal: verified.principal, tools, step_up: stepUp } };
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
async function withCallContext(deps: ServerEndpointDeps, server: string, allowed: AllowDecision): Promise<AllowDecision & { call_context?: string }> {
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
