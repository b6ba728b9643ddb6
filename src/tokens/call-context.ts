import { SignJWT } from 'jose';
import type { Clock } from '../clock';
import { argumentsDigest } from '../crypto/hash';
import type { KeyRing } from './key-ring';
import { SIGNING_ALG } from './signing-key';

/**
 * The signed call context: a short-lived JWT assertion the broker adds to an allow, for the downstream
 * service the tool is about to reach (policy `tenants.<t>.tools.<tool>.downstream.audience`). It says
 * "this one call, for this tenant and principal, with exactly these arguments, was authorized", so the
 * downstream can check who it serves without trusting the MCP server to speak for a tenant on its own.
 *
 * - Signed with the broker's token-signing keys, so it verifies against the same JWKS
 *   (`/.well-known/jwks.json`) with nothing but a JWT library.
 * - Its own `typ` (`bulkhead-call+jwt`): the broker's access-token verifier requires `at+jwt`, so an
 *   assertion is never accepted as a bearer token, and a downstream that requires this `typ` never
 *   accepts an access token as an assertion. Its `aud` is the downstream service, never an MCP server id.
 * - Lives at most 60 s and never past the access token it was derived from.
 * - `args_s256` is the SHA-256 of the canonical JSON (sorted keys, no whitespace) of the effective
 *   arguments, under the broker's signature: the downstream recomputes it from what it was asked to do.
 *   It is a digest, not a keyed MAC, so that the downstream needs no broker secret to check it; only
 *   the parties that are handed the arguments themselves ever see it (the audit and approvals carry the
 *   tenant-keyed `arguments_mac` instead).
 * - `jti` is the call id: a downstream that remembers ids for 60 s refuses a replay.
 */

export const CALL_CONTEXT_TYPE = 'bulkhead-call+jwt';
export const CALL_CONTEXT_MAX_TTL_SECONDS = 60;

export interface CallContextClaims {
  iss: string;
  aud: string;
  /** The principal the call is made for. */
  sub: string;
  tid: string;
  sid: string;
  /** The MCP server the call was authorized for (the party that presents the assertion). */
  azp: string;
  jti: string;
  call_id: string;
  tool: string;
  args_s256: string;
  iat: number;
  nbf: number;
  exp: number;
}

export interface CallForContext {
  call_id: string;
  tenant: string;
  principal: string;
  session: string;
  tool: string;
  arguments: Record<string, unknown>;
  /** When the access token behind the call expires (ISO 8601); the assertion never outlives it. */
  expires_at: string;
}

export interface CallContextSigner {
  sign(call: CallForContext, context: { server: string; audience: string }): Promise<string>;
}

export function createCallContextSigner(deps: { keyRing: Pick<KeyRing, 'signingKey'>; clock: Clock; issuer: string }): CallContextSigner {
  return {
    async sign(call, { server, audience }) {
      const now = Math.floor(deps.clock.now() / 1000);
      const exp = Math.min(now + CALL_CONTEXT_MAX_TTL_SECONDS, Math.floor(Date.parse(call.expires_at) / 1000));
      if (!(exp > now)) throw new Error('the access token behind this call has expired');
      const claims: CallContextClaims = {
        iss: deps.issuer,
        aud: audience,
        sub: call.principal,
        tid: call.tenant,
        sid: call.session,
        azp: server,
        jti: call.call_id,
        call_id: call.call_id,
        tool: call.tool,
        args_s256: argumentsDigest(call.arguments),
        iat: now,
        nbf: now,
        exp,
      };
      const { kid, privateKey } = deps.keyRing.signingKey();
      return new SignJWT({ ...claims }).setProtectedHeader({ alg: SIGNING_ALG, typ: CALL_CONTEXT_TYPE, kid }).sign(privateKey);
    },
  };
}
