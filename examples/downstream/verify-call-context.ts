import { createHash } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTPayload } from 'jose';

/**
 * What a downstream service (the CRM's API behind the MCP server) runs to check a Bulkhead call
 * context: `jose` and node:crypto only, no Bulkhead code. It answers "which tenant and principal is
 * this request for, and is it exactly the call the broker authorized?" without trusting the MCP server.
 *
 *   const verify = callContextVerifier({ brokerUrl: 'https://bulkhead.internal', issuer: 'https://bulkhead.internal', audience: 'https://crm-api.internal' });
 *   const call = await verify(req.headers['bulkhead-call-context'], requestArguments);
 *   // call.tid is the tenant to serve; refuse the request if verify throws.
 *
 * Checks: the broker's signature (keys from its JWKS, refetched on rotation), `typ` (a Bulkhead access
 * token is refused), `iss`, `aud` = this service, lifetime, and that `args_s256` is the SHA-256 of the
 * canonical JSON of the arguments this request carries. Remember `jti` for 60 s to refuse a replay.
 */

export interface CallContext extends JWTPayload {
  tid: string;
  sub: string;
  sid: string;
  azp: string;
  jti: string;
  call_id: string;
  tool: string;
  args_s256: string;
}

export function callContextVerifier(options: { brokerUrl: string; issuer: string; audience: string }) {
  const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', options.brokerUrl));
  return async function verify(assertion: unknown, args: Record<string, unknown>): Promise<CallContext> {
    if (typeof assertion !== 'string') throw new Error('no call context');
    const { payload } = await jwtVerify(assertion, jwks, {
      algorithms: ['EdDSA'],
      typ: 'bulkhead-call+jwt',
      issuer: options.issuer,
      audience: options.audience,
      maxTokenAge: '60s',
      requiredClaims: ['tid', 'sub', 'sid', 'jti', 'call_id', 'tool', 'args_s256', 'iat', 'exp'],
    });
    if (payload.args_s256 !== createHash('sha256').update(canonicalJson(args)).digest('base64url')) throw new Error('arguments differ from the authorized call');
    return payload as CallContext;
  };
}

/** JSON with object keys sorted at every depth and no whitespace: what the broker hashes. */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sort) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])])) : v;
  return JSON.stringify(sort(value));
}
