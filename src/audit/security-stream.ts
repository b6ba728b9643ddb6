import { z } from 'zod';
import { sha256Hex } from '../crypto/hash';
import { idSchema, isPolicyId } from '../policy/schema';

/**
 * The broker's own audit stream, for attempts that have no verifiable tenant: a token whose signature
 * does not verify (forged, edited, unsigned, truncated, from another issuer, under an unknown kid), a
 * token whose verified tenant is no longer in the policy, and a caller whose server or operator key is
 * wrong. Chained, checkpointed and verified like a tenant's stream and kept by the same audit log.
 *
 * Its name starts with "_", which no tenant id can (idSchema: a letter or digit first), so no policy
 * tenant can ever own it, and a forged token's claimed tenant never decides where its attempt is kept.
 */
export const SECURITY_STREAM = '_security';

/** What an audit stream may be called: a tenant id or the security stream. */
export const streamIdSchema = z
  .string()
  .superRefine((id, ctx) => {
    if (id === SECURITY_STREAM) return;
    // A tenant id's own messages, so an operator's typo is answered as for any tenant id.
    for (const issue of idSchema.safeParse(id).error?.issues ?? []) ctx.addIssue({ code: 'custom', message: issue.message });
  })
  // The same rule for the OpenAPI document (a refinement has no JSON Schema of its own).
  .meta({ anyOf: [{ pattern: (z.toJSONSchema(idSchema) as { pattern: string }).pattern }, { const: SECURITY_STREAM }] });

/** `streamIdSchema` as a plain test (no zod walk), for paths that check a stream id on every call. */
export function isStreamId(id: string): boolean {
  return id === SECURITY_STREAM || isPolicyId(id);
}

/**
 * The fingerprint of a presented token: SHA-256 of the whole token, so repeated attempts with one token
 * can be told apart from different ones and matched against a token an operator holds. Never the token,
 * nor a part of it (a header, claims or signature prefix would hand a reader what the attacker sent).
 */
export function tokenFingerprint(token: string): string {
  return sha256Hex(token);
}
