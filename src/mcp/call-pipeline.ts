import { systemClock, type Clock } from '../clock';
import { sha256Hex } from '../crypto/hash';
import { abortableSleep } from './abortable-sleep';
import { createBackgroundCompletions } from './background-completions';
import type { Allow, BrokerClient, Deny } from './broker-client';
import { createCallGrant, type BulkheadCall } from './call-grant';
import { BulkheadHandleError, type HandleCodec } from './handles';
import type { BulkheadIdentity } from './token-verifier';
import { denyResult, redactSecret, type ToolResult } from './tool-results';

/**
 * The policy enforcement around one tool call, independent of the MCP SDK that carries it (the v1
 * entry on @modelcontextprotocol/sdk and the v2 entry on @modelcontextprotocol/server both run it):
 *
 * 1. `authorize`: /v1/authorize, and while the answer is "needs approval" and the wait allows, ask
 *    again with backoff (the v1 entry waits in-request; the v2 entry defaults to no wait and answers
 *    with an MRTR round instead).
 * 2. `run`: the handler with a grant (effective arguments + credential), then /v1/complete, then the
 *    checks on what leaves: a quarantined session or an uncheckable record count withholds the result,
 *    and any occurrence of the credential is redacted. A call that reported no record count does not
 *    wait for /v1/complete: its answer cannot change the result (background-completions.ts).
 * 3. `list`: a server's tools narrowed to /v1/manifest.
 *
 * Anything that keeps the broker from answering is a refusal (`broker_unavailable`), never a guess.
 */

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
  /** How long a call that needs approval waits for the operator; 0 answers at once. Default 30 s (v1), 0 (v2). */
  waitMs?: number;
  /** First delay between two asks; it grows to `maxPollMs`. Defaults 250 ms and 2000 ms. */
  pollMs?: number;
  maxPollMs?: number;
  /** Told once per call that needs approval, so the operator can be pointed at the approval id. */
  onPending?: (pending: PendingApproval) => void;
}

export interface CallPipelineOptions {
  broker: BrokerClient;
  /** Seals the handles a call mints to its tenant and principal. */
  handles: HandleCodec;
  approval?: ApprovalWait;
  /** The default of `approval.waitMs`. */
  defaultWaitMs: number;
  logger?: GuardLogger;
  clock?: Clock;
  /** Told when the broker refused the token itself (revoked, expired…), e.g. to drop it from a cache. */
  onTokenRefused?: (token: string) => void;
}

/** What the carrying SDK provides while a call waits for approval. */
export interface WaitHooks {
  signal: AbortSignal;
  /** A progress notification to the client, if it asked for them. */
  progress(step: number, message: string): Promise<void>;
}

export interface AuthorizeRequest {
  token: string;
  identity: BulkheadIdentity | null;
  tool: string;
  arguments: Record<string, unknown>;
  callId: string;
  /** A tenant claimed outside the token (a header): the broker denies a different one as `tenant_override`. */
  claimedTenant?: string;
}

export interface CallPipeline {
  authorize(request: AuthorizeRequest, hooks: WaitHooks): Promise<Allow | Deny>;
  /** Runs the handler for an allowed call; `invoke` receives the call's grant. */
  run<R extends ToolResult>(decision: Allow, invoke: (call: BulkheadCall) => Promise<R>): Promise<R>;
  /** `tools` narrowed to what /v1/manifest allows this token; a deny when the broker refuses. */
  list<T extends { name: string }>(token: string, tools: T[] | Promise<T[]>): Promise<T[] | Deny>;
  /** Waits up to `timeoutMs` for the completions still in flight (before the broker connection closes). */
  drain(timeoutMs: number): Promise<void>;
}

/** Reasons that are about the token itself: it will not be accepted again. */
const TOKEN_REFUSALS = new Set(['token_invalid', 'token_expired', 'token_revoked', 'session_revoked', 'principal_revoked', 'tenant_revoked', 'audience_mismatch']);

export function createCallPipeline(options: CallPipelineOptions): CallPipeline {
  const { broker } = options;
  const clock = options.clock ?? systemClock;
  const waitMs = options.approval?.waitMs ?? options.defaultWaitMs;
  const firstPollMs = options.approval?.pollMs ?? 250;
  const maxPollMs = options.approval?.maxPollMs ?? 2000;
  const log = options.logger;
  const completions = createBackgroundCompletions(broker, { logger: log, clock });

  async function ask(request: AuthorizeRequest): Promise<Allow | Deny> {
    const decision = await broker.authorize({
      token: request.token,
      tool: request.tool,
      arguments: request.arguments,
      call_id: request.callId,
      ...(request.claimedTenant !== undefined ? { tenant: request.claimedTenant } : {}),
    });
    if (decision.decision === 'deny' && TOKEN_REFUSALS.has(decision.reason)) options.onTokenRefused?.(request.token);
    return decision;
  }

  return {
    async authorize(request, hooks) {
      const { tool, callId, identity } = request;
      // Taken before asking: a completion of ours on its way may hold the tenant's slot while the broker
      // decides, and land before its deny does. Once what was in flight has landed, ask once more (any
      // other holder still makes it a deny).
      const ours = identity === null ? undefined : completions.inFlight(identity.tenant);
      let decision = await ask(request);
      if (ours !== undefined && decision.decision === 'deny' && decision.reason === 'concurrency_exceeded') {
        // Bounded by the broker's own Retry-After: a completion being retried does not stall this call.
        await Promise.race([ours, abortableSleep((decision.retry_after ?? 1) * 1000, hooks.signal)]);
        decision = await ask(request);
      }
      if (decision.decision === 'allow' || decision.reason !== 'approval_required' || decision.approval_id === undefined) return decision;

      const approvalId = decision.approval_id;
      options.approval?.onPending?.({ approvalId, callId, tool, tenant: identity?.tenant ?? '', principal: identity?.principal ?? '', session: identity?.session ?? '' });
      log?.info({ tool, call_id: callId, tenant: identity?.tenant, approval_id: approvalId }, 'tool call needs operator approval');
      if (waitMs <= 0) return decision;
      const deadline = clock.now() + waitMs;
      let delay = firstPollMs;
      let polls = 0;
      for (;;) {
        await hooks.progress(++polls, `waiting for operator approval ${approvalId} of ${tool}`);
        const left = deadline - clock.now();
        if (hooks.signal.aborted) return { ...decision, message: `${decision.message}; the client cancelled the call while it waited (approval_id ${approvalId})` };
        if (left <= 0) return { ...decision, message: `${decision.message}; not approved within ${Math.round(waitMs / 1000)}s (approval_id ${approvalId})` };
        await abortableSleep(Math.min(delay, left), hooks.signal);
        delay = Math.min(maxPollMs, Math.round(delay * 1.5));
        decision = await ask(request);
        if (decision.decision === 'allow' || decision.reason !== 'approval_required') return decision;
        // The open approval for this exact call changed: the operator denied it (or it expired).
        if (decision.approval_id !== approvalId) {
          return { decision: 'deny', reason: 'approval_required', message: `approval ${approvalId} was denied or expired; the call did not run` };
        }
      }
    },

    async run<R extends ToolResult>(decision: Allow, invoke: (call: BulkheadCall) => Promise<R>): Promise<R> {
      // A refused handle decides the result whatever the handler did with the error (the SDKs turn a
      // throwing tool into an error result of their own before it gets back here).
      let refusedHandle: BulkheadHandleError | null = null;
      const handles = options.handles.for(decision);
      const grant = createCallGrant(decision, {
        mint: handles.mint,
        resolve<T>(handle: unknown, resolveOptions?: { kind?: string }): T {
          try {
            return handles.resolve<T>(handle, resolveOptions);
          } catch (err) {
            if (err instanceof BulkheadHandleError) refusedHandle = err;
            throw err;
          }
        },
      });
      const secret = decision.credential.value;
      let result: ToolResult;
      try {
        result = await invoke(grant.call);
      } catch (err) {
        // What the SDKs do with a throwing tool, done here too so the message is redacted below.
        result = { isError: true, content: [{ type: 'text', text: err instanceof Error ? err.message : String(err) }] };
      }
      if (refusedHandle !== null) {
        const { reason, message } = refusedHandle as BulkheadHandleError;
        log?.warn({ tool: decision.tool, call_id: decision.call_id, tenant: decision.tenant, reason }, 'tool call presented a handle not minted for this caller');
        result = denyResult({ reason, message });
      }
      grant.release();
      const records = grant.records();
      const status = result.isError ? 'error' : 'success';
      const where = { tool: decision.tool, call_id: decision.call_id, tenant: decision.tenant };
      if (records === undefined) {
        // Nothing /v1/complete can answer changes a result without a record count: it goes in the background.
        completions.send(decision, status);
      } else {
        const closed = await broker.complete({ call_id: decision.call_id, status, records });
        if ('decision' in closed) {
          log?.warn({ ...where, reason: closed.reason }, 'tool call could not be completed at the broker');
          // The max_records rule could not run: a result that reported records is not handed over.
          result = denyResult({ reason: closed.reason, message: `${closed.message}; the result was withheld because its record count could not be checked` });
        } else if (closed.quarantined) {
          log?.warn({ ...where, records }, 'tool call exceeded max_records; session quarantined');
          result = denyResult({ reason: 'session_quarantined', message: `the call returned ${records} records, more than this tool allows; the session is quarantined and the result withheld` });
        }
      }
      const cleaned = redactSecret(result, secret);
      if (cleaned.found) log?.warn(where, 'tool result contained the call credential; redacted');
      // The call context is for the downstream service, not for the client.
      const context = redactSecret(cleaned.value, decision.call_context ?? '');
      if (context.found) log?.warn(where, 'tool result contained the call context; redacted');
      return context.value as R;
    },

    async list(token, tools) {
      // The broker and the server's own list are asked together: neither waits for the other.
      const [manifest, listed] = await Promise.all([broker.manifest(token), tools]);
      if ('decision' in manifest) {
        if (TOKEN_REFUSALS.has(manifest.reason)) options.onTokenRefused?.(token);
        return manifest;
      }
      const allowed = new Set(manifest.tools);
      return listed.filter((tool) => allowed.has(tool.name));
    },

    drain: (timeoutMs) => completions.drain(timeoutMs),
  };
}

/**
 * The tool field of a "tool call denied" log line. A name the broker refused as not allowed may be text
 * the agent chose (a secret it wants planted in a log), so only its hash is logged, as the broker's audit does.
 */
export function deniedToolField(tool: string, reason: string): { tool: string } | { tool_sha256: string } {
  return reason === 'tool_not_allowed' ? { tool_sha256: sha256Hex(tool) } : { tool };
}
