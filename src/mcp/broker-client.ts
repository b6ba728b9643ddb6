import type { AllowDecision } from '../authorize/authorizer';
import { withDeadline } from '../deadline';
import type { DenyReason, OtherReason } from '../errors';
import { brokerAddress } from '../net/broker-address';
import { createKeepAliveTransport } from '../net/keep-alive-http';

/**
 * The MCP server's side of the broker contract (DESIGN.md "Authorizing a tool call"): /v1/authorize,
 * /v1/complete and /v1/manifest, authenticated with the server key. Every call is bounded by a timeout,
 * and every failure to get an answer (refused connection, timeout, a body that is not the contract's)
 * becomes a deny with `broker_unavailable`: the wrapper fails closed and never guesses.
 *
 * Requests go over one keep-alive connection pool (net/keep-alive-http.ts, undici's: a tool call costs
 * two broker round trips; a fresh connection and fetch's client CPU per round trip were most of the
 * wrapper's added latency).
 *
 * Nothing here logs, and no error built here quotes the token, the server key or a credential.
 */

/**
 * The broker's reasons (a deny, or an error such as `server_unauthenticated` on /v1/complete), plus the
 * wrapper's own: `broker_unavailable`, the broker could not be asked at all, and `handle_invalid`, a
 * handle presented to a tool was not minted for this caller (handles.ts).
 */
export type McpDenyReason = DenyReason | OtherReason | 'broker_unavailable' | 'handle_invalid';

/**
 * The allow answer is the broker's own type: one definition of the wire contract for both sides; plus
 * the signed call context the route adds when the tool's policy names a downstream service.
 */
export type Allow = AllowDecision & { call_context?: string };
export type ResolvedCredential = AllowDecision['credential'];

export interface Deny {
  decision: 'deny';
  reason: McpDenyReason;
  message: string;
  approval_id?: string;
  /** Seconds, from `Retry-After` on quota denies. */
  retry_after?: number;
}

export interface Manifest {
  tenant: string;
  principal: string;
  tools: string[];
  /** Tools policy grants this principal on this server that the token's scope lacks (step-up candidates). */
  stepUp: string[];
}

export interface CompleteAnswer {
  quarantined: boolean;
}

export interface BrokerClientOptions {
  /**
   * Where this MCP server reaches Bulkhead: http://127.0.0.1:8700, or a unix socket as
   * `unix:/run/bulkhead/broker.sock` (or `http+unix://%2Frun%2Fbulkhead%2Fbroker.sock`) for a sidecar.
   */
  brokerUrl: string | URL;
  /** This MCP server's key (policy `servers.<id>.key_sha256` is its SHA-256). */
  serverKey: string;
  /** Per request; default 5000 ms. */
  timeoutMs?: number;
  /** Most pooled sockets to the broker; default unbounded (Node's default). */
  maxSockets?: number;
}

export interface BrokerClient {
  /** `tenant`: a tenant the request claimed outside the token (a header); the broker denies it `tenant_override` if it differs. */
  authorize(request: { token: string; tool: string; arguments: Record<string, unknown>; call_id?: string; tenant?: string }): Promise<Allow | Deny>;
  /** Deny (not throw) when the call could not be closed: the caller decides what failing closed means. */
  complete(request: { call_id: string; status: 'success' | 'error'; records?: number }): Promise<CompleteAnswer | Deny>;
  manifest(token: string): Promise<Manifest | Deny>;
  /** Closes the pooled connections. */
  close(): void;
}

const unavailable = (what: string): Deny => ({
  decision: 'deny',
  reason: 'broker_unavailable',
  message: `Bulkhead could not be reached to ${what}; refused (fail closed)`,
});

export function createBrokerClient(options: BrokerClientOptions): BrokerClient {
  const { base, socketPath } = brokerAddress(options.brokerUrl);
  const timeoutMs = options.timeoutMs ?? 5000;
  const transport = createKeepAliveTransport({ maxBodyBytes: MAX_ANSWER_BYTES, maxSockets: options.maxSockets, socketPath });
  const headers = { authorization: `Bearer ${options.serverKey}`, 'content-type': 'application/json' };
  const urls = { authorize: new URL('/v1/authorize', base), complete: new URL('/v1/complete', base), manifest: new URL('/v1/manifest', base) };

  /** One POST; `null` when no contract answer came back (network, timeout, non-JSON body). */
  async function post(url: URL, body: unknown): Promise<{ status: number; json: Record<string, unknown>; retryAfter: string | null } | null> {
    try {
      const response = await withDeadline(timeoutMs, 'broker request', undefined, (signal) => transport.request({ method: 'POST', url, headers, body: JSON.stringify(body), signal }));
      const json = JSON.parse(response.text) as unknown;
      if (!json || typeof json !== 'object' || Array.isArray(json)) return null;
      const retryAfter = response.headers['retry-after'];
      return { status: response.status, json: json as Record<string, unknown>, retryAfter: typeof retryAfter === 'string' ? retryAfter : null };
    } catch {
      // The cause (ECONNREFUSED, TimeoutError, SyntaxError) says nothing a client needs and may echo a URL.
      return null;
    }
  }

  /** A deny body per DESIGN.md, or null if the answer is not one. */
  function denyOf(answer: { status: number; json: Record<string, unknown>; retryAfter: string | null }): Deny | null {
    const { json } = answer;
    const reason = typeof json.reason === 'string' ? json.reason : typeof json.error === 'string' ? json.error : null;
    if (answer.status < 400 || reason === null) return null;
    const deny: Deny = { decision: 'deny', reason: reason as McpDenyReason, message: typeof json.message === 'string' ? json.message : reason };
    if (typeof json.approval_id === 'string') deny.approval_id = json.approval_id;
    const retry = Number(answer.retryAfter);
    if (answer.retryAfter !== null && Number.isFinite(retry)) deny.retry_after = retry;
    return deny;
  }

  return {
    async authorize(request) {
      const answer = await post(urls.authorize, request);
      if (!answer) return unavailable('authorize this call');
      const deny = denyOf(answer);
      if (deny) return deny;
      const json = answer.json;
      if (answer.status === 200 && json.decision === 'allow' && isCredential(json.credential) && isRecord(json.arguments) && typeof json.call_id === 'string' && (json.call_context === undefined || typeof json.call_context === 'string')) {
        return json as unknown as Allow;
      }
      return unavailable('authorize this call');
    },

    async complete(request) {
      const answer = await post(urls.complete, request);
      if (!answer) return unavailable('close this call');
      if (answer.status === 200 && answer.json.completed === true) return { quarantined: answer.json.quarantined === true };
      return denyOf(answer) ?? unavailable('close this call');
    },

    async manifest(token) {
      const answer = await post(urls.manifest, { token });
      if (!answer) return unavailable('list the tools this token may use');
      const deny = denyOf(answer);
      if (deny) return deny;
      const { tenant, principal, tools, step_up: stepUp = [] } = answer.json;
      if (answer.status === 200 && typeof tenant === 'string' && typeof principal === 'string' && isStringArray(tools) && isStringArray(stepUp)) {
        return { tenant, principal, tools, stepUp };
      }
      return unavailable('list the tools this token may use');
    },

    close: () => transport.close(),
  };
}

/** Broker answers are small JSON documents; anything larger is not one. */
const MAX_ANSWER_BYTES = 1 << 20;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCredential(value: unknown): value is ResolvedCredential {
  return isRecord(value) && typeof value.value === 'string' && typeof value.source === 'string' && typeof value.ref === 'string';
}
