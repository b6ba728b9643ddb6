import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { sha256Hex } from '../crypto/hash';
import { describeIssues } from '../policy/load';
import { idSchema } from '../policy/schema';

/**
 * What `bulkhead selftest` knows that the policy holds only as hashes: the canary MCP servers' keys, the
 * canary principals' client secrets and the canary secret values each canary tenant's credential must
 * resolve to. Made by `bulkhead selftest init`, kept with the deployment pipeline's secrets (mode 0600).
 */
const secret = z.string().min(32);
export const canaryFileSchema = z
  .object({
    version: z.literal(1),
    /** Two canary servers: the second exists to present a token for the wrong audience. */
    servers: z.tuple([z.object({ id: idSchema, key: secret }).strict(), z.object({ id: idSchema, key: secret }).strict()]),
    tenants: z
      .array(z.object({ id: idSchema, principal: idSchema, secret, credential_value: secret }).strict())
      .length(2),
  })
  .strict();
export type CanaryFile = z.infer<typeof canaryFileSchema>;

export const CANARY_TOOLS = { read: 'canary_read', export: 'canary_export' } as const;

export function readCanaryFile(path: string): CanaryFile {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: cannot read the canary file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const parsed = canaryFileSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${path}: ${describeIssues(parsed.error, raw)[0]}`);
  return parsed.data;
}

export function newCanaryFile(tenantIds: [string, string] = ['canary-a', 'canary-b'], serverIds: [string, string] = ['canary-mcp', 'canary-mcp-2']): CanaryFile {
  const random = () => randomBytes(32).toString('base64url');
  return {
    version: 1,
    servers: [{ id: serverIds[0], key: random() }, { id: serverIds[1], key: random() }],
    tenants: tenantIds.map((id) => ({ id, principal: `${id}-agent`, secret: random(), credential_value: `${id}-canary-${random()}` })) as CanaryFile['tenants'],
  };
}

/**
 * The policy entries the canaries need, as plain data (hashes only): merged into a policy file by the
 * operator, or by tests. Each canary reads only under its own prefix and may be quarantined by
 * exporting more than one record.
 */
export function canaryPolicy(file: CanaryFile): { servers: Record<string, unknown>; tenants: Record<string, unknown> } {
  const tools = [CANARY_TOOLS.read, CANARY_TOOLS.export];
  return {
    servers: Object.fromEntries(file.servers.map((s) => [s.id, { key_sha256: sha256Hex(s.key), tools }])),
    tenants: Object.fromEntries(
      file.tenants.map((t) => [
        t.id,
        {
          canary: true,
          principals: { [t.principal]: { secret_sha256: sha256Hex(t.secret), tools } },
          tools: {
            [CANARY_TOOLS.read]: { credential: 'canary', resource: { arg: 'path', prefix: `${t.id}/` }, inject: { lane: t.id } },
            [CANARY_TOOLS.export]: { credential: 'canary', max_records: 1 },
          },
          credentials: { canary: { source: 'local', name: 'canary' } },
        },
      ]),
    ),
  };
}
