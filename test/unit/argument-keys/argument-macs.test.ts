import { randomBytes } from 'node:crypto';
import { isShredded, type ArgumentKeyStorage, type StoredArgumentKey } from '../../../src/argument-keys/argument-key-storage';
import { createArgumentMacs, type ArgumentMacsDeps } from '../../../src/argument-keys/argument-macs';
import { masterKeyKek, type KeyEncryptionKey } from '../../../src/crypto/key-encryption-key';
import { isBrokerError } from '../../../src/errors';

/**
 * The argument key's life in one process, with an in-memory storage and KEKs that can be switched off:
 * the hot path asks no root while the key is cached; past the cache a root or storage that does not
 * answer is a typed 503 for that tenant only, and the broker recovers by itself; two brokers on one
 * storage agree on one key even when they race for the first; a tombstone is `tenant_shredded`.
 */

function memoryStorage(): ArgumentKeyStorage & { rows: Map<string, StoredArgumentKey>; down: boolean } {
  const rows = new Map<string, StoredArgumentKey>();
  const storage = {
    rows,
    down: false,
    async read(tenant: string) {
      if (storage.down) throw new Error('storage down');
      return rows.get(tenant);
    },
    async create(tenant: string, key: StoredArgumentKey) {
      if (storage.down) throw new Error('storage down');
      // Yield first, so that two creators can both get here before either has stored (a real race).
      await new Promise((resolve) => setImmediate(resolve));
      if (!rows.has(tenant)) rows.set(tenant, key);
      return rows.get(tenant)!;
    },
    async rewrap(tenant: string, from: { wrapped: string }, to: StoredArgumentKey) {
      const now = rows.get(tenant);
      if (now && !isShredded(now) && now.wrapped === from.wrapped) rows.set(tenant, to);
    },
    async shred(tenant: string, at: Date) {
      rows.set(tenant, { shredded_at: at.toISOString() });
    },
  };
  return storage;
}

/** A tenant root in front of an AES key of its own; `down` makes it fail like an unreachable KMS. */
function switchableRoot(id: string): KeyEncryptionKey & { down: boolean; calls: number } {
  const inner = masterKeyKek(randomBytes(32));
  const root = {
    id,
    down: false,
    calls: 0,
    async wrap(key: Buffer, context: string) {
      root.calls++;
      if (root.down) throw new Error(`${id} does not answer`);
      return inner.wrap(key, context);
    },
    async unwrap(wrapped: string, context: string) {
      root.calls++;
      if (root.down) throw new Error(`${id} does not answer`);
      return inner.unwrap(wrapped, context);
    },
  };
  return root;
}

async function reasonOf(promise: unknown): Promise<string> {
  try {
    await promise;
    return 'allowed';
  } catch (err) {
    return isBrokerError(err) ? `${err.status} ${err.reason}` : `untyped: ${(err as Error).message}`;
  }
}

describe('argument MACs', () => {
  let now: number;
  let storage: ReturnType<typeof memoryStorage>;
  let acmeRoot: ReturnType<typeof switchableRoot>;
  let globexRoot: ReturnType<typeof switchableRoot>;
  const master = masterKeyKek(randomBytes(32));
  const args = { path: 'reports/q4', region: 'eu-west-1' };
  const macs = (overrides: Partial<ArgumentMacsDeps> = {}) =>
    createArgumentMacs({ storage, keks: (t) => (t === 'acme' ? acmeRoot : t === 'globex' ? globexRoot : master), master, now: () => now, cacheMs: 60_000, ...overrides });

  beforeEach(() => {
    now = 1_000_000;
    storage = memoryStorage();
    acmeRoot = switchableRoot('aws_kms:acme-key');
    globexRoot = switchableRoot('vault_transit:transit/globex');
  });

  it('asks the root once and then never on the hot path while the key is cached', async () => {
    const m = macs();
    const first = await m.mac('acme', args);
    const calls = acmeRoot.calls;
    for (let i = 0; i < 100; i++) expect(await m.mac('acme', args)).toBe(first);
    expect(acmeRoot.calls).toBe(calls);
    // A cached key survives a root outage: nothing was asked of it.
    acmeRoot.down = true;
    expect(await m.mac('acme', args)).toBe(first);
  });

  it('is a 503 upstream_unavailable for the tenant whose root is down once its key is no longer cached, and for no other; it recovers by itself', async () => {
    const m = macs();
    const acme = await m.mac('acme', args);
    const globex = await m.mac('globex', args);
    acmeRoot.down = true;
    now += 60_001;
    expect(await reasonOf(m.mac('acme', args))).toBe('503 upstream_unavailable');
    expect(await m.mac('globex', args)).toBe(globex);
    expect(await m.mac('initech', args)).toMatch(/^[0-9a-f]{64}$/);
    acmeRoot.down = false;
    expect(await m.mac('acme', args)).toBe(acme);
  });

  it('is a 503 upstream_unavailable when the first key cannot be wrapped, and stores nothing then', async () => {
    acmeRoot.down = true;
    expect(await reasonOf(macs().mac('acme', args))).toBe('503 upstream_unavailable');
    expect(storage.rows.has('acme')).toBe(false);
  });

  it('is a 503 state_unavailable when the stored key cannot be read', async () => {
    storage.down = true;
    expect(await reasonOf(macs().mac('acme', args))).toBe('503 state_unavailable');
  });

  it('gives two brokers on one storage the same MAC, even when both make the first key at once', async () => {
    const [one, two] = [macs(), macs()];
    const [a, b] = await Promise.all([one.mac('acme', args), two.mac('acme', args)]);
    expect(a).toBe(b);
    expect(await macs().mac('acme', args)).toBe(a);
  });

  it('shares one load between concurrent calls of a tenant (one unwrap, not one per call)', async () => {
    await macs().mac('acme', args);
    const m = macs();
    const before = acmeRoot.calls;
    const all = await Promise.all(Array.from({ length: 20 }, () => m.mac('acme', args)));
    expect(new Set(all).size).toBe(1);
    expect(acmeRoot.calls - before).toBe(1);
  });

  it('refuses a shredded tenant tenant_shredded (403) once its cached key expires, and never makes it a new key', async () => {
    const m = macs();
    await m.mac('acme', args);
    await storage.shred('acme', new Date(now));
    now += 60_001;
    expect(await reasonOf(m.mac('acme', args))).toBe('403 tenant_shredded');
    expect(await reasonOf(macs().mac('acme', args))).toBe('403 tenant_shredded');
    expect(isShredded(storage.rows.get('acme')!)).toBe(true);
    expect(await m.mac('globex', args)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('opens a key wrapped under the master key after the tenant moved to its own root, and rewraps it there (same MAC)', async () => {
    const before = await macs({ keks: () => master }).mac('acme', args);
    expect(storage.rows.get('acme')).toMatchObject({ kek: 'master' });
    expect(await macs().mac('acme', args)).toBe(before);
    expect(storage.rows.get('acme')).toMatchObject({ kek: 'aws_kms:acme-key' });
    // From then on the master key alone no longer opens it.
    expect(await reasonOf(macs({ keks: () => master }).mac('acme', args))).toBe('503 upstream_unavailable');
  });

  it('refuses a key wrapped by a root the policy does not name for the tenant', async () => {
    await macs().mac('acme', args);
    expect(await reasonOf(macs({ keks: () => globexRoot }).mac('acme', args))).toBe('503 upstream_unavailable');
  });
});
