import { createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { BrokerError, failClosed as step } from '../errors';
import { argumentsMac } from '../crypto/hash';
import { MASTER_KEK_ID, type KeyEncryptionKey, type KeyEncryptionKeys } from '../crypto/key-encryption-key';
import { argumentKeyContext, isShredded, type ArgumentKeyStorage, type WrappedArgumentKey } from './argument-key-storage';

/**
 * `arguments_mac`: HMAC-SHA256 of the canonical JSON of a call's effective arguments under a random
 * 32-byte key of the call's tenant. It is what the audit records and what approvals match on, so
 * equal arguments still compare equal inside a tenant (across restarts and replicas: the key is stored,
 * wrapped, in the broker's state), while someone reading the audit can no longer test a guess by
 * hashing it, and one tenant's MACs say nothing about another's.
 *
 * The key is wrapped by the tenant's key-encryption key (the master key, or the tenant's own Vault
 * transit / AWS KMS key), so it goes with that root, and `bulkhead tenant shred` replaces it with a
 * tombstone: from then on the tenant's calls are refused `tenant_shredded`.
 *
 * The hot path asks no one: the unwrapped key stays in memory for `cacheMs` (broker.data_key_cache),
 * then the stored record is read and unwrapped again once (one in-flight load per tenant), so a root
 * disabled elsewhere or a shred takes effect within that time. Without a cached key, a root or state
 * that does not answer is a 503 for that tenant only; other tenants' keys are untouched.
 */
export interface ArgumentMacs {
  /**
   * The tenant's MAC of `args` (lowercase hex), computed at once when the key is in memory (the hot
   * path: no promise to wait for); rejects with a BrokerError when the tenant's key cannot be had.
   */
  mac(tenant: string, args: unknown): string | Promise<string>;
  /** Drops the tenant's key from memory (this broker just shredded it): its next call reads the tombstone. */
  forget(tenant: string): void;
}

export interface ArgumentMacsDeps {
  storage: ArgumentKeyStorage;
  /** Each tenant's root as the live policy names it. */
  keks: KeyEncryptionKeys;
  /** Opens a key wrapped before its tenant moved to a root of its own (it is then rewrapped). */
  master: KeyEncryptionKey;
  now: () => number;
  cacheMs: number;
  /** At most this many tenants' keys are held at once (default 10 000). */
  maxTenants?: number;
}

export function createArgumentMacs(deps: ArgumentMacsDeps): ArgumentMacs {
  const maxTenants = deps.maxTenants ?? 10_000;
  const cache = new Map<string, { key: KeyObject; expiresAt: number }>();
  const loading = new Map<string, Promise<KeyObject>>();

  async function load(tenant: string): Promise<KeyObject> {
    const context = argumentKeyContext(tenant);
    let stored = await step('state_unavailable', `tenant "${tenant}"'s argument key could not be read`, () => deps.storage.read(tenant));
    let fresh: { raw: Buffer; wrapped: string } | undefined;
    if (stored === undefined) {
      const raw = randomBytes(32);
      const root = deps.keks(tenant);
      const wrapped = await step('upstream_unavailable', `tenant "${tenant}"'s key-encryption key is unavailable`, () => root.wrap(raw, context));
      fresh = { raw, wrapped };
      stored = await step('state_unavailable', `tenant "${tenant}"'s argument key could not be stored`, () => deps.storage.create(tenant, { kek: root.id, wrapped }));
    }
    if (isShredded(stored)) throw new BrokerError('tenant_shredded', `tenant "${tenant}" was shredded (its argument key is destroyed); its calls are refused`);
    const raw = fresh && fresh.wrapped === stored.wrapped ? fresh.raw : await unwrap(tenant, stored);
    try {
      return createSecretKey(raw);
    } finally {
      raw.fill(0);
    }
  }

  async function unwrap(tenant: string, stored: WrappedArgumentKey): Promise<Buffer> {
    const context = argumentKeyContext(tenant);
    const current = deps.keks(tenant);
    const opener = stored.kek === current.id ? current : stored.kek === MASTER_KEK_ID ? deps.master : undefined;
    if (!opener) throw new BrokerError('upstream_unavailable', `tenant "${tenant}"'s argument key is wrapped by ${stored.kek}, but the policy names ${current.id}`);
    const raw = await step('upstream_unavailable', `tenant "${tenant}"'s key-encryption key is unavailable`, () => opener.unwrap(stored.wrapped, context));
    if (raw.length !== 32) throw new BrokerError('upstream_unavailable', `tenant "${tenant}"'s argument key is malformed`);
    if (opener !== current) {
      // The tenant moved to a root of its own: from now on the key goes with that root (and its shred).
      const wrapped = await step('upstream_unavailable', `tenant "${tenant}"'s key-encryption key is unavailable`, () => current.wrap(raw, context));
      await step('state_unavailable', `tenant "${tenant}"'s argument key could not be stored`, () => deps.storage.rewrap(tenant, stored, { kek: current.id, wrapped }));
    }
    return raw;
  }

  function keyOf(tenant: string): KeyObject | Promise<KeyObject> {
    const cached = cache.get(tenant);
    if (cached && cached.expiresAt > deps.now()) return cached.key;
    let pending = loading.get(tenant);
    if (!pending) {
      pending = load(tenant).then(
        (key) => {
          cache.delete(tenant);
          if (cache.size >= maxTenants) cache.delete(cache.keys().next().value!);
          cache.set(tenant, { key, expiresAt: deps.now() + deps.cacheMs });
          return key;
        },
        (err) => {
          // Never a stale key past its time: a root that stopped answering or a shred is felt now.
          cache.delete(tenant);
          throw err;
        },
      );
      const settled = pending.finally(() => loading.delete(tenant));
      settled.catch(() => undefined);
      loading.set(tenant, pending);
    }
    return pending;
  }

  return {
    mac(tenant, args) {
      const key = keyOf(tenant);
      return key instanceof Promise ? key.then((loaded) => argumentsMac(loaded, args)) : argumentsMac(key, args);
    },
    forget(tenant) {
      cache.delete(tenant);
    },
  };
}
