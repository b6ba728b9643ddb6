import type { Allow, ResolvedCredential } from './broker-client';
import type { CallHandles } from './handles';

/**
 * What an allowed tool call hands its handler: who is calling (from the verified token, via the
 * broker), the effective arguments, and the tenant's upstream credential resolved for this call only.
 *
 * The handler reads it with `bulkheadCall(extra)`. It is kept in a WeakMap keyed by the `extra` object
 * the wrapper built for this one call, so nothing is added to the SDK's types and a handler that was
 * not reached through the wrapper gets a clear error instead of someone else's grant. When the call
 * ends the credential is released: reading it afterwards throws, and the wrapper's own reference is
 * dropped (a string cannot be wiped in JS, but nothing of ours keeps it alive).
 */

export interface BulkheadCall {
  readonly callId: string;
  readonly tenant: string;
  readonly principal: string;
  readonly session: string;
  readonly tool: string;
  /** The effective arguments: injected fields forced, resources normalised, tenant-bound. */
  readonly arguments: Readonly<Record<string, unknown>>;
  /** The tenant's upstream credential for this call. Throws once the call has ended. */
  readonly credential: Readonly<ResolvedCredential>;
  /**
   * The broker-signed call context (a `bulkhead-call+jwt`, ≤ 60 s) for the downstream service the tool's
   * policy names (`downstream.audience`); undefined when it names none. Send it to that service next to
   * the credential, so it can check the tenant, principal, tool and arguments itself. Throws once the call has ended.
   */
  readonly callContext: string | undefined;
  /** Handles bound to this caller's tenant and principal: `mint(value)` here, `resolve(handle)` on a later call. */
  readonly handles: CallHandles;
  /** How many records the call returned; sent to /v1/complete, where `max_records` is enforced. */
  reportRecords(count: number): void;
}

export interface CallGrant {
  call: BulkheadCall;
  records(): number | undefined;
  /** Ends the call: the credential is no longer reachable through the grant. */
  release(): void;
}

const grants = new WeakMap<object, BulkheadCall>();

export function createCallGrant(allow: Allow, handles: CallHandles): CallGrant {
  let credential: Readonly<ResolvedCredential> | null = loggable(allow.credential);
  let released = false;
  let records: number | undefined;
  const call = {
    callId: allow.call_id,
    tenant: allow.tenant,
    principal: allow.principal,
    session: allow.session,
    tool: allow.tool,
    arguments: Object.freeze({ ...allow.arguments }),
    handles,
    reportRecords(count: number) {
      if (!Number.isSafeInteger(count) || count < 0) throw new TypeError('bulkhead: reportRecords needs a non-negative integer');
      records = (records ?? 0) + count;
    },
  } as BulkheadCall;
  // Not enumerable: logging or serialising the call (`log.info({ call })`) never includes the credential.
  Object.defineProperty(call, 'credential', {
    enumerable: false,
    get(): Readonly<ResolvedCredential> {
      if (!credential) throw new Error(`bulkhead: the credential of call ${allow.call_id} was released when the call ended`);
      return credential;
    },
  });
  Object.defineProperty(call, 'callContext', {
    enumerable: false,
    get(): string | undefined {
      if (released) throw new Error(`bulkhead: the call context of call ${allow.call_id} was released when the call ended`);
      return allow.call_context;
    },
  });
  Object.freeze(call);
  return {
    call,
    records: () => records,
    release() {
      credential = null;
      released = true;
    },
  };
}

/** A frozen copy whose JSON form leaves the value out, so a careless log line shows only where it came from. */
function loggable(credential: ResolvedCredential): Readonly<ResolvedCredential> {
  const copy = { ...credential };
  Object.defineProperty(copy, 'toJSON', { enumerable: false, value: () => ({ ...copy, value: '[redacted]' }) });
  return Object.freeze(copy);
}

/** Ties a grant to the `extra` object one call's handler receives. */
export function attachCall(extra: object, call: BulkheadCall): void {
  grants.set(extra, call);
}

/**
 * The Bulkhead grant of the tool call this handler is running for. Throws if the handler was not
 * reached through `protect()`: a tool that needs a credential must never run without one.
 */
export function bulkheadCall(extra: object): BulkheadCall {
  const call = grants.get(extra);
  if (!call) throw new Error('bulkhead: no authorized call for this handler (is the server wrapped with protect()?)');
  return call;
}
