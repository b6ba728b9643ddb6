import { hkdfSync } from 'node:crypto';
import { createRequestStateCodec, type RequestStateCodec, type ServerContext } from '@modelcontextprotocol/server';
import { argumentsMac } from '../../crypto/hash';
import { identityOf } from '../token-verifier';

/**
 * The `requestState` of an approval round (MRTR, protocol 2026-07-28): when /v1/authorize answers
 * `approval_required`, the v2 entry answers the tools/call with an InputRequiredResult whose
 * requestState names the pending approval, and the client retries with it once the operator decided.
 *
 * The state goes through the client, so it is attacker-controlled on the way back. It is sealed with
 * the SDK's HMAC-SHA256 codec (`createRequestStateCodec`), which the SDK runs before the handler and
 * which refuses a forged, altered or expired state with -32602:
 * - bound (the codec's `bind`) to the caller's tenant, principal and Bulkhead session (from the verified
 *   token), so another caller's state is refused even with a valid MAC;
 * - carrying the tool and a keyed MAC of the arguments, checked by the guard against the retry, so a
 *   state minted for one call cannot approve another;
 * - expiring with the broker's approval (default 15 minutes).
 * Single use is not decided here: the broker's approval store consumes an approval atomically, so a
 * replayed state (on this replica or another) finds its approval already used.
 *
 * The key is derived from the server key unless one is configured: every replica of this MCP server
 * has the server key, and a state must verify on whichever replica the retry reaches.
 */

export interface ApprovalState {
  v: 1;
  approval_id: string;
  tool: string;
  /** HMAC-SHA256 of the canonical JSON of the arguments the client sent (hex), under this wrapper's key. */
  args_mac: string;
}

export interface ApprovalStateCodec {
  codec: RequestStateCodec<ApprovalState>;
  argsMac(args: Record<string, unknown>): string;
}

export function createApprovalStateCodec(options: { serverKey: string; key?: Uint8Array | string; ttlSeconds?: number }): ApprovalStateCodec {
  const root = options.key ?? options.serverKey;
  const derive = (label: string) => Buffer.from(hkdfSync('sha256', Buffer.from(root), Buffer.alloc(0), Buffer.from(`bulkhead/mcp ${label} v1`), 32));
  const stateKey = derive('requestState');
  const macKey = derive('arguments-mac');
  const codec = createRequestStateCodec<ApprovalState>({
    key: stateKey,
    ttlSeconds: options.ttlSeconds ?? 15 * 60,
    // No identity (no Bulkhead token) binds to a value no token produces, so such a state never verifies.
    bind: (ctx: ServerContext) => {
      const identity = identityOf(ctx.http?.authInfo);
      return identity ? `${identity.tenant}\0${identity.principal}\0${identity.session}` : '\0unauthenticated';
    },
  });
  return {
    codec,
    argsMac: (args) => argumentsMac(macKey, args),
  };
}

export function isApprovalState(value: unknown): value is ApprovalState {
  const v = value as Partial<ApprovalState> | null;
  return typeof v === 'object' && v !== null && v.v === 1 && typeof v.approval_id === 'string' && typeof v.tool === 'string' && typeof v.args_mac === 'string';
}
