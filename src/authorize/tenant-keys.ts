import { foldKey } from './fold-key';

/** Argument keys that name a tenant; a differing value in arguments is a `tenant_override`. */
const TENANT_KEYS = ['tenant', 'tenant_id', 'tenantId', 'tid'] as const;

// Keys are folded the same way attackers vary them (see fold-key.ts), so tenant_id, Tenant-ID,
// ｔｅｎａｎｔＩｄ, ten\u200Bant and tıd all match.
const FOLDED_TENANT_KEYS = new Set<string>(TENANT_KEYS.map(foldKey));

/** A key that folds to a tenant key, such as TENANT_ID or ｔｉｄ. */
export function isTenantKeyFolded(key: string): boolean {
  return FOLDED_TENANT_KEYS.has(foldKey(key));
}
