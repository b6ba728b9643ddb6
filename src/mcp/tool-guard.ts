import { randomUUID } from 'node:crypto';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ErrorCode, McpError, type CallToolRequest, type CallToolResult, type ListToolsRequest, type ListToolsResult, type ServerNotification, type ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { Clock } from '../clock';
import type { BrokerClient } from './broker-client';
import { attachCall } from './call-grant';
import { createCallPipeline, deniedToolField, type ApprovalWait, type GuardLogger } from './call-pipeline';
import type { HandleCodec } from './handles';
import { identityOf } from './token-verifier';
import { denyResult, type ToolResult } from './tool-results';

export type { ApprovalWait, GuardLogger, PendingApproval } from './call-pipeline';

/**
 * The v1 entry's policy enforcement point (SDK 1.x, protocol 2025-11-25), one check per MCP method
 * that touches tools; the checks themselves are the shared call pipeline (call-pipeline.ts):
 * - tools/list: the server's list, narrowed to what /v1/manifest allows this token.
 * - tools/call: /v1/authorize before the handler, /v1/complete after it. On deny the handler never runs
 *   and the client gets a tool error carrying the reason code. On allow the handler gets the effective
 *   arguments and the credential (through `bulkheadCall(extra)`), but not the client's token: that
 *   stays here, so a handler cannot forward it upstream by mistake. A call that needs approval waits
 *   in-request (default 30 s) with progress notifications.
 */

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type ListHandler = (request: ListToolsRequest, extra: Extra) => ListToolsResult | Promise<ListToolsResult>;
type CallHandler = (request: CallToolRequest, extra: Extra) => CallToolResult | Promise<CallToolResult>;

export interface ToolGuardOptions {
  broker: BrokerClient;
  handles: HandleCodec;
  approval?: ApprovalWait;
  logger?: GuardLogger;
  clock?: Clock;
  onTokenRefused?: (token: string) => void;
}

export interface ToolGuard {
  listTools(original: ListHandler): ListHandler;
  callTool(original: CallHandler): CallHandler;
  /** Waits up to `timeoutMs` for tool calls' completions still on their way to the broker. */
  drain(timeoutMs: number): Promise<void>;
}

export function createToolGuard(options: ToolGuardOptions): ToolGuard {
  const pipeline = createCallPipeline({ ...options, defaultWaitMs: 30_000 });
  const log = options.logger;

  return {
    drain: (timeoutMs) => pipeline.drain(timeoutMs),

    listTools(original) {
      return async (request, extra) => {
        const token = extra.authInfo?.token;
        if (!token) throw new McpError(ErrorCode.InvalidRequest, 'Bulkhead: no bearer token on this request; tools/list refused');
        const listed = Promise.resolve(original(request, extra));
        const tools = await pipeline.list(token, listed.then((l) => l.tools));
        if ('decision' in tools) throw new McpError(ErrorCode.InvalidRequest, `Bulkhead denied tools/list: ${tools.reason}: ${tools.message}`);
        return { ...(await listed), tools };
      };
    },

    callTool(original) {
      return async (request, extra) => (await guardedCall(original, request, extra)) as CallToolResult;
    },
  };

  async function guardedCall(original: CallHandler, request: CallToolRequest, extra: Extra): Promise<ToolResult> {
    const tool = request.params.name;
    // A task outlives the call, but the credential is released when the call ends: refuse, don't half-run.
    if (request.params.task) throw new McpError(ErrorCode.InvalidRequest, 'Bulkhead: task-augmented tool calls are not supported');
    const token = extra.authInfo?.token;
    if (!token) return denyResult({ reason: 'token_invalid', message: 'no bearer token on this request; the call did not run' });
    const callId = randomUUID();
    const identity = identityOf(extra.authInfo);
    const decision = await pipeline.authorize(
      { token, identity, tool, arguments: request.params.arguments ?? {}, callId },
      { signal: extra.signal, progress: (step, message) => progress(extra, step, message) },
    );
    if (decision.decision === 'deny') {
      log?.info({ ...deniedToolField(tool, decision.reason), call_id: callId, tenant: identity?.tenant, reason: decision.reason }, 'tool call denied');
      return denyResult(decision);
    }
    return pipeline.run(decision, async (call) => {
      const handlerExtra = withoutClientToken(extra);
      attachCall(handlerExtra, call);
      return original({ ...request, params: { ...request.params, arguments: { ...decision.arguments } } }, handlerExtra);
    });
  }
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
