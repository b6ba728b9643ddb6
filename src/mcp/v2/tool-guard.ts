import { randomUUID } from 'node:crypto';
import {
  CLIENT_CAPABILITIES_META_KEY,
  inputRequired,
  inputResponse,
  ProtocolError,
  ProtocolErrorCode,
  type CallToolRequest,
  type CallToolResult,
  type InputRequiredResult,
  type ListToolsRequest,
  type ListToolsResult,
  type ScopeChallengeHandler,
  type ServerContext,
} from '@modelcontextprotocol/server';
import type { Clock } from '../../clock';
import type { BrokerClient } from '../broker-client';
import { attachCall } from '../call-grant';
import { createCallPipeline, deniedToolField, type ApprovalWait, type GuardLogger } from '../call-pipeline';
import type { HandleCodec } from '../handles';
import { identityOf, type BulkheadIdentity } from '../token-verifier';
import { denyResult, type ToolResult } from '../tool-results';
import { isApprovalState, type ApprovalStateCodec } from './approval-state';

/**
 * The v2 entry's policy enforcement point (SDK 2.x, protocol 2026-07-28). The same call pipeline as
 * the v1 entry (call-pipeline.ts); what differs is what the 2026 revision asks of a server:
 * - tools/list: narrowed to /v1/manifest, sorted by name (the list may vary by the authorization
 *   presented, and by nothing else), `cacheScope: "private"` pinned so no shared cache serves one
 *   caller's list to another.
 * - tools/call that needs an operator's approval: an InputRequiredResult (MRTR) with a sealed, bound
 *   requestState (approval-state.ts) instead of holding the HTTP request open; the retry carries it.
 * - a tool the policy grants but the token's scope lacks: a 403 `insufficient_scope` challenge naming
 *   the whole scope the caller needs (`scopeChallenge`, run by the SDK before dispatch), so the client
 *   steps up instead of reading a bare tool_not_allowed.
 * - a tenant mirrored into a request header is a claim, not an identity: it goes to the broker as one
 *   and a different tenant than the token's is denied `tenant_override`.
 */

type ListHandler = (request: ListToolsRequest, ctx: ServerContext) => ListToolsResult | Promise<ListToolsResult>;
type CallResult = CallToolResult | InputRequiredResult;
type CallHandler = (request: CallToolRequest, ctx: ServerContext) => CallResult | Promise<CallResult>;

/** The inputRequests key of the approval round. */
export const APPROVAL_INPUT = 'bulkhead_approval';

/** Headers a client or proxy may use to name a tenant; never trusted, always checked against the token. */
const TENANT_HEADER = /^(x-)?(bulkhead-)?tenant(-id)?$|^mcp-param-tenant(-?id)?$/i;

export interface ToolGuardV2Options {
  broker: BrokerClient;
  handles: HandleCodec;
  approvals: ApprovalStateCodec;
  /** `waitMs` defaults to 0 here: the MRTR round replaces waiting in-request. */
  approval?: ApprovalWait;
  logger?: GuardLogger;
  clock?: Clock;
  onTokenRefused?: (token: string) => void;
}

export interface ToolGuardV2 {
  listTools(original: ListHandler): ListHandler;
  callTool(original: CallHandler): CallHandler;
  /** Waits up to `timeoutMs` for tool calls' completions still on their way to the broker. */
  drain(timeoutMs: number): Promise<void>;
  /** The per-tool `scopeChallenge`: 403 insufficient_scope when policy would allow the tool with a wider scope. */
  scopeChallenge: ScopeChallengeHandler;
}

export function createToolGuardV2(options: ToolGuardV2Options): ToolGuardV2 {
  const { broker, approvals } = options;
  const pipeline = createCallPipeline({ ...options, defaultWaitMs: 0 });
  const log = options.logger;

  async function approvalRound(ctx: ServerContext, approvalId: string, tool: string, args: Record<string, unknown>): Promise<InputRequiredResult> {
    const requestState = await approvals.codec.mint({ v: 1, approval_id: approvalId, tool, args_mac: approvals.argsMac(args) }, ctx);
    return inputRequired({
      inputRequests: {
        [APPROVAL_INPUT]: inputRequired.elicit({
          message: `Bulkhead: ${tool} needs an operator's approval (approval_id ${approvalId}). Continue once the operator has decided.`,
          requestedSchema: { type: 'object', properties: { decided: { type: 'boolean', title: 'The operator has decided', description: `approval_id ${approvalId}` } } },
        }),
      },
      requestState,
    });
  }

  async function guardedCall(original: CallHandler, request: CallToolRequest, ctx: ServerContext): Promise<ToolResult | InputRequiredResult> {
    const tool = request.params.name;
    if ((request.params as { task?: unknown }).task) throw new ProtocolError(ProtocolErrorCode.InvalidRequest, 'Bulkhead: task-augmented tool calls are not supported');
    const auth = ctx.http?.authInfo;
    const token = auth?.token;
    if (!token) return denyResult({ reason: 'token_invalid', message: 'no bearer token on this request; the call did not run' });
    const identity = identityOf(auth);
    const args = request.params.arguments ?? {};
    const callId = randomUUID();
    const refuse = (reason: Parameters<typeof denyResult>[0]['reason'], message: string) => {
      log?.info({ ...deniedToolField(tool, reason), call_id: callId, tenant: identity?.tenant, reason }, 'tool call denied');
      return denyResult({ reason, message });
    };

    // A retry of an approval round. The SDK has verified the seal, expiry and caller binding already.
    const state: unknown = ctx.mcpReq.requestState();
    if (state !== undefined) {
      if (!isApprovalState(state) || state.tool !== tool || state.args_mac !== approvals.argsMac(args)) {
        return refuse('approval_required', 'the requestState was issued for a different call; the call did not run');
      }
      const answer = inputResponse(ctx.mcpReq.inputResponses, APPROVAL_INPUT);
      if (answer.kind === 'elicit' && answer.action !== 'accept') {
        return refuse('approval_required', `the client stopped waiting for approval ${state.approval_id}; the call did not run`);
      }
    }

    const decision = await pipeline.authorize(
      { token, identity, tool, arguments: args, callId, claimedTenant: claimedTenant(ctx, identity) },
      { signal: ctx.mcpReq.signal, progress: (step, message) => progress(ctx, step, message) },
    );
    if (decision.decision === 'deny') {
      if (decision.reason === 'approval_required' && decision.approval_id !== undefined) {
        // The approval this state named is gone (used, denied or expired): the broker opened a new one.
        if (isApprovalState(state) && decision.approval_id !== state.approval_id) {
          return refuse('approval_required', `approval ${state.approval_id} was already used, denied or expired; the call did not run`);
        }
        if (canElicit(ctx)) return approvalRound(ctx, decision.approval_id, tool, args);
      }
      log?.info({ ...deniedToolField(tool, decision.reason), call_id: callId, tenant: identity?.tenant, reason: decision.reason }, 'tool call denied');
      return denyResult(decision);
    }
    return pipeline.run(decision, async (call) => {
      const handlerCtx = withoutClientToken(ctx);
      attachCall(handlerCtx, call);
      return (await original({ ...request, params: { ...request.params, arguments: { ...decision.arguments } } }, handlerCtx)) as CallToolResult;
    });
  }

  return {
    drain: (timeoutMs) => pipeline.drain(timeoutMs),

    listTools(original) {
      return async (request, ctx) => {
        const token = ctx.http?.authInfo?.token;
        if (!token) throw new ProtocolError(ProtocolErrorCode.InvalidRequest, 'Bulkhead: no bearer token on this request; tools/list refused');
        const listed = Promise.resolve(original(request, ctx));
        const tools = await pipeline.list(token, listed.then((l) => l.tools));
        if ('decision' in tools) throw new ProtocolError(ProtocolErrorCode.InvalidRequest, `Bulkhead denied tools/list: ${tools.reason}: ${tools.message}`);
        const sorted = [...tools].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        return { ...(await listed), tools: sorted, cacheScope: 'private' } as ListToolsResult;
      };
    },

    callTool(original) {
      return async (request, ctx) => (await guardedCall(original, request, ctx)) as CallResult;
    },

    async scopeChallenge({ request, authInfo }) {
      const tool = (request.params as { name?: unknown } | undefined)?.name;
      const token = authInfo?.token;
      if (typeof tool !== 'string' || !token || authInfo.scopes.includes(tool)) return undefined;
      const manifest = await broker.manifest(token);
      // Not a step-up (the policy forbids the tool, or the token is refused): the call goes on and the
      // broker answers it with the real reason, tool_not_allowed or the token's.
      if ('decision' in manifest || !manifest.stepUp.includes(tool)) return undefined;
      const scopes = [...new Set([...authInfo.scopes, tool])].sort();
      if (!scopes.every((scope) => SCOPE_TOKEN.test(scope))) return undefined;
      log?.info({ tool, tenant: manifest.tenant }, 'tool call needs a wider token scope; step-up challenge');
      return { scopes: scopes as [string, ...string[]], errorDescription: `tool ${tool} needs scope ${tool}` };
    },
  };
}

/** RFC 6749 scope-token; the SDK refuses a challenge naming anything else. */
const SCOPE_TOKEN = /^[\u0021\u0023-\u005B\u005D-\u007E]+$/;

/** The tenant a request header names, if any; one that differs from the token's wins, so it is denied. */
function claimedTenant(ctx: ServerContext, identity: BulkheadIdentity | null): string | undefined {
  const headers = ctx.http?.req?.headers;
  if (!headers) return undefined;
  let claimed: string | undefined;
  headers.forEach((value, name) => {
    if (!TENANT_HEADER.test(name)) return;
    if (claimed === undefined || value !== identity?.tenant) claimed = value;
  });
  return claimed;
}

function canElicit(ctx: ServerContext): boolean {
  const capabilities = (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[CLIENT_CAPABILITIES_META_KEY] as { elicitation?: unknown } | undefined;
  return capabilities?.elicitation !== undefined;
}

/**
 * The context a handler sees: the same request, minus the client's bearer token (in `authInfo` and in
 * the raw request's headers). The handler gets the upstream credential instead; the token is for Bulkhead.
 */
function withoutClientToken(ctx: ServerContext): ServerContext {
  if (!ctx.http) return { ...ctx };
  const http = { ...ctx.http };
  if (http.authInfo) http.authInfo = { ...http.authInfo, token: '' };
  if (http.req) {
    const headers = new Headers(http.req.headers);
    headers.delete('authorization');
    http.req = new Request(http.req.url, { method: http.req.method, headers });
  }
  return { ...ctx, http };
}

async function progress(ctx: ServerContext, step: number, message: string): Promise<void> {
  const progressToken = ctx.mcpReq._meta?.progressToken;
  if (progressToken === undefined) return;
  await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: step, message } }).catch(() => undefined);
}
