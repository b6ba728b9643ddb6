import { open, seal } from './envelope';

/**
 * The root a tenant's data keys are wrapped under (BYOK). The embedded default wraps with the broker
 * master key; a tenant may instead name a Vault/OpenBao transit key or an AWS KMS key that it controls,
 * so that disabling or deleting that key makes every copy of the tenant's sealed data unreadable,
 * including a restored backup of the whole data dir. Unwrapped data keys live in memory only.
 */
export interface KeyEncryptionKey {
  /** Recorded beside each wrapped key: "master", "vault_transit:<mount>/<key>", "aws_kms:<key id>". */
  readonly id: string;
  /** `context` binds the wrapped key to its tenant and purpose (AAD, KMS encryption context). */
  wrap(dataKey: Buffer, context: string): Promise<string>;
  /** Throws when the root is gone, disabled or unreachable: the caller fails closed for that tenant. */
  unwrap(wrapped: string, context: string): Promise<Buffer>;
  /**
   * Destroys the root itself, where the broker is allowed to (the crypto-shred that survives backups).
   * Returns what was done, for the operator; absent for the master key, which every tenant shares.
   */
  destroy?(): Promise<string>;
}

/** The tenant → KEK lookup the embedded store uses; the policy decides which root each tenant has. */
export type KeyEncryptionKeys = (tenant: string) => KeyEncryptionKey;

export const MASTER_KEK_ID = 'master';

export function masterKeyKek(masterKey: Buffer): KeyEncryptionKey {
  return {
    id: MASTER_KEK_ID,
    wrap: async (dataKey, context) => seal(masterKey, dataKey, context),
    unwrap: async (wrapped, context) => open(masterKey, wrapped, context),
  };
}
