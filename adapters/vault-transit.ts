import type { KeyEncryptionKey } from '../src/crypto/key-encryption-key';
import { encodeVaultPath, isSimpleName } from './vault-path';
import { UpstreamFailure } from './upstream-failure';

/** What the transit KEK needs from the Vault source: a write or delete as the tenant's own Vault identity. */
export type VaultCallAsTenant = (method: 'write' | 'delete', path: string, body?: Record<string, unknown>) => Promise<{ data?: Record<string, unknown> } | undefined>;

/**
 * A tenant's data keys wrapped by a Vault/OpenBao transit key (`tenants.T.encryption.vault_transit`).
 * Vault never sees the tenant's secrets, only its 32-byte data key, and only in wrap/unwrap calls made
 * with the tenant's own AppRole, so Vault's policy decides who may use the key. The context is sent
 * as transit `associated_data` (AEAD keys) so a wrapped key moved to another tenant does not open.
 */
export function createVaultTransitKek(options: { mount: string; key: string; call: VaultCallAsTenant }): KeyEncryptionKey {
  const mount = encodeVaultPath(options.mount);
  if (!mount || !isSimpleName(options.key)) throw new UpstreamFailure('vault transit mount or key is not a safe name');
  const path = (op: 'encrypt' | 'decrypt') => `${mount}/${op}/${options.key}`;
  const associated = (context: string) => Buffer.from(context, 'utf8').toString('base64');
  return {
    id: `vault_transit:${options.mount}/${options.key}`,
    async wrap(dataKey, context) {
      const answer = await options.call('write', path('encrypt'), { plaintext: dataKey.toString('base64'), associated_data: associated(context) });
      const ciphertext = answer?.data?.ciphertext;
      if (typeof ciphertext !== 'string') throw new UpstreamFailure('vault transit encrypt: no ciphertext in the answer');
      return ciphertext;
    },
    async unwrap(wrapped, context) {
      const answer = await options.call('write', path('decrypt'), { ciphertext: wrapped, associated_data: associated(context) });
      const plaintext = answer?.data?.plaintext;
      if (typeof plaintext !== 'string') throw new UpstreamFailure('vault transit decrypt: no plaintext in the answer');
      return Buffer.from(plaintext, 'base64');
    },
    async destroy() {
      try {
        await options.call('write', `${mount}/keys/${options.key}/config`, { deletion_allowed: true });
      } catch (err) {
        // OpenBao and Vault answer 400 ("no existing key named … could be found") to a config write on a
        // key that does not exist. The tenant's identity may not read keys, so this is how a rerun (a
        // shred or tenant delete that died after the key was deleted) tells the key is already gone.
        if (err instanceof UpstreamFailure && err.statusCode === 400) return `vault transit key ${options.mount}/${options.key} is already gone`;
        throw err;
      }
      await options.call('delete', `${mount}/keys/${options.key}`);
      return `deleted vault transit key ${options.mount}/${options.key}`;
    },
  };
}
