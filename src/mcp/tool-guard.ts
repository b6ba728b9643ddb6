import { randomUUID } from 'node:crypto';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ErrorCode, McpError, type CallToolRequest, type CallToolResult, type ListToolsRequest, type ListToolsResult, type ServerNotification, type ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { systemClock, type Clock } from '../clock';
import type { Allow, BrokerClient, Deny } from './broker-client';
import { attachCall, createCallGrant } from './call-grant';
import { identityOf } from './token-verifier';
import { denyResult, redactSecret } from './tool-results';

/**
 * The wrapper's policy enforcement point, one check per MCP method that touches tools:
 * - tools/list: the server's list, narrowed to what /v1/manifest allows this token.
 * - tools/call: /v1/authorize before the handler, /v1/complete after it. On deny the handler never runs
 *   and the client gets a tool error carrying the reason code. On allow the handler gets the effective
 *   arguments and the credential (through `bulkheadCall(extra)`), but not the client's token: that
 *   stays here, so a handler cannot forward it upstream by mistake.
 * Anything that keeps the broker from answering is a refusal (`broker_unavailable`), never a guess.
 */

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type ListHandler = (request: ListToolsRequest, extra: Extra) => ListToolsResult | Promise<ListToolsResult>;
type CallHandler = (request: CallToolRequest, extra: Extra) => CallToolResult | Promise<CallToolResult>;

/** The subset of a pino logger the wrapper uses. Nothing passed to it is a token or a credential. */
export interface GuardLogger {
  info(obj: Record<string, unknown>, msg: string): void;
  warn(obj: Record<string, unknown>, msg: string): void;
}

export interface PendingApproval {
  approvalId: string;
  callId: string;
  tool: string;
  tenant: string;
  principal: string;
  session: string;
}

export interface ApprovalWait {
  /** How long a call that needs approval waits for the operator; 0 answers `approval_required` at once. Default 30 s. */
  waitMs?: number;
  /** First delay between two asks; it grows to `maxPollMs`. Defaults 250 ms and 2000 ms. */
  pollMs?: number;
  maxPollMs?: number;
  /** Told once per waiting call, so the operator can be pointed at the approval id. */
  onPending?: (pending: PendingApproval) => void;
}

export interface ToolGuardOptions {
  broker: BrokerClient;
  approval?: ApprovalWait;
  logger?: GuardLogger;
  clock?: Clock;
}

export interface ToolGuard {
  listTools(original: ListHandler): ListHandler;
  callTool(original: CallHandler): CallHandler;
}

export function createToolGuard(options: ToolGuardOptions): ToolGuard {
  const { broker } = options;
  const clock = options.clock ?? systemClock;
  const waitMs = options.approval?.waitMs ?? 30_000;
  const firstPollMs = options.approval?.pollMs ?? 250;
  const maxPollMs = options.approval?.maxPollMs ?? 2000;
  const log = options.logger;

  /** Asks once, and while the answer is "needs approval" and the wait allows, asks again. */
  async function authorize(token: string, tool: string, args: Record<string, unknown>, callId: string, extra: Extra): Promise<Allow | Deny> {
    let decision = await broker.authorize({ token, tool, arguments: args, call_id: callId });
    if (decision.decision === 'allow' || decision.reason !== 'approval_required' || waitMs <= 0 || decision.approval_id === undefined) return decision;

    const approvalId = decision.approval_id;
    const identity = identityOf(extra.authInfo);
    options.approval?.onPending?.({ approvalId, callId, tool, tenant: identity?.tenant ?? '', principal: identity?.principal ?? '', session: identity?.session ?? '' });
    log?.info({ tool, call_id: callId, tenant: identity?.tenant, approval_id: approvalId }, 'tool call waits for operator approval');
    const deadline = clock.now() + waitMs;
    let delay = firstPollMs;
    let polls = 0;
    for (;;) {
      await progress(extra, ++polls, `waiting for operator approval ${approvalId} of ${tool}`);
      const left = deadline - clock.now();
      if (extra.signal.aborted) return { ...decision, message: `${decision.message}; the client cancelled the call while it waited (approval_id ${approvalId})` };
      if (left <= 0) return { ...decision, message: `${decision.message}; not approved within ${Math.round(waitMs / 1000)}s (approval_id ${approvalId})` };
      await sleep(Math.min(delay, left), extra.signal);
      delay = Math.min(maxPollMs, Math.round(delay * 1.5));
      decision = await broker.authorize({ token, tool, arguments: args, call_id: callId });
      if (decision.decision === 'allow' || decision.reason !== 'approval_required') return decision;
      // The open approval for this exact call changed: the operator denied it (or it expired).
      if (decision.approval_id !== approvalId) {
        return { decision: 'deny', reason: 'approval_required', message: `approval ${approvalId} was denied or expired; the call did not run` };
      }
    }
  }

  return {
    listTools(original) {
      return async (request, extra) => {
        const token = extra.authInfo?.token;
        if (!token) throw new McpError(ErrorCode.InvalidRequest, 'Bulkhead: no bearer token on this request; tools/list refused');
        const [manifest, listed] = await Promise.all([broker.manifest(token), original(request, extra)]);
        if ('decision' in manifest) throw new McpError(ErrorCode.InvalidRequest, `Bulkhead denied tools/list: ${manifest.reason}: ${manifest.message}`);
        const allowed = new Set(manifest.tools);
        return { ...listed, tools: listed.tools.filter((tool) => allowed.has(tool.name)) };
      };
    },

    callTool(original) {
      return async (request, extra) => {
        const tool = request.params.name;
        // A task outlives the call, but the credential is released when the call ends: refuse, don't half-run.
        if (request.params.task) throw new McpError(ErrorCode.InvalidRequest, 'Bulkhead: task-augmented tool calls are not supported');
        const token = extra.authInfo?.token;
        if (!token) return denyResult({ reason: 'token_invalid', message: 'no bearer token on this request; the call did not run' });
        const callId = randomUUID();
        const decision = await authorize(token, tool, request.params.arguments ?? {}, callId, extra);
        if (decision.decision === 'deny') {
          log?.info({ tool, call_id: callId, tenant: identityOf(extra.authInfo)?.tenant, reason: decision.reason }, 'tool call denied');
          return denyResult(decision);
        }

        const grant = createCallGrant(decision);
        const handlerExtra = withoutClientToken(extra);
        attachCall(handlerExtra, grant.call);
        const secret = decision.credential.value;
        let result: CallToolResult;
        try {
          result = await original({ ...request, params: { ...request.params, arguments: { ...decision.arguments } } }, handlerExtra);
        } catch (err) {
          // What McpServer does with a throwing tool, done here too so the message is redacted below.
          result = { isError: true, content: [{ type: 'text', text: err instanceof Error ? err.message : String(err) }] };
        }
        grant.release();
        const records = grant.records();
        const closed = await broker.complete({ call_id: decision.call_id, status: result.isError ? 'error' : 'success', records });
        if ('decision' in closed) {
          log?.warn({ tool, call_id: decision.call_id, tenant: decision.tenant, reason: closed.reason }, 'tool call could not be completed at the broker');
          // The max_records rule could not run: a result that reported records is not handed over.
          if (records !== undefined) result = denyResult({ reason: closed.reason, message: `${closed.message}; the result was withheld because its record count could not be checked` });
        } else if (closed.quarantined) {
          log?.warn({ tool, call_id: decision.call_id, tenant: decision.tenant, records }, 'tool call exceeded max_records; session quarantined');
          result = denyResult({ reason: 'session_quarantined', message: `the call returned ${records} records, more than this tool allows; the session is quarantined and the result withheld` });
        }
        const cleaned = redactSecret(result, secret);
        if (cleaned.found) log?.warn({ tool, call_id: decision.call_id, tenant: decision.tenant }, 'tool result contained the call credential; redacted');
        return cleaned.value;
      };
    },
  };
}

/**
 * The `extra` a handler sees: the same request context, minus the client's bearer token (in `authInfo`
 * and in the raw headers). The handler gets the upstream credential instead; the token is for Bulkhead.
 */
function withoutClientToken(extra: Extra): Extra {
  const copy: Extra = { ...extra };
  if (extra.authInfo) copy.authInfo = { ...extra.authInfo, token: '' };
  if (extra.requestInfo) {
    const headers = Object.fromEntries(Object.entries(extra.requestInfo.headers).filter(([name]) => name.toLowerCase() !== 'authorization'));
    copy.requestInfo = { ...extra.requestInfo, headers };
  }
  return copy;
}

async function progress(extra: Extra, step: number, message: string): Promise<void> {
  const progressToken = extra._meta?.progressToken;
  if (progressToken === undefined) return;
  await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, message } }).catch(() => undefined);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
