import { importJWK, type JWK, type KeyLike } from 'jose';
import type { Clock } from '../clock';
import type { KeyRecord, KeyState, KeyStore, OpenedKeyRing } from './key-store';
import { createSigningKey, SIGNING_ALG } from './signing-key';

/**
 * The token-signing keys and their life cycle: next → current → previous → retired → dropped.
 *
 * Why the order matters:
 * - A key is published (JWKS, and verificationKey) as `next` for a whole rotation interval before it
 *   signs anything, so MCP servers caching the JWKS and replicas that have not reloaded yet already
 *   trust it when the first token signed with it arrives.
 * - A key that stops signing stays published as `previous`, then keeps verifying while `retired` until
 *   every token it can have signed has expired (retired_at + max token TTL + clock skew).
 * - Each rotation is persisted before memory switches, so a failed save changes nothing and the step
 *   can simply be retried; and it starts from the stored ring, so a replica with a stale view cannot
 *   undo another replica's rotation.
 * The timer that calls rotate() lives in rotation/.
 */

export interface KeyRingDeps {
  /** Seals keys at rest (see key-store.ts); the ring only ever sees them opened. */
  store: KeyStore;
  clock: Clock;
  maxTokenTtlMs: number;
  clockSkewMs: number;
}

export interface SigningKey {
  kid: string;
  privateKey: KeyLike;
}

export interface KeyStatus {
  kid: string;
  state: KeyState;
  ageMs: number;
  createdAt: number;
  activatedAt?: number;
  retiredAt?: number;
}

export interface KeyRing {
  /** Tokens must not outlive this, or they would outlive their key's verification window. */
  readonly maxTokenTtlMs: number;
  /** Loads the ring, or creates one current and one next key on first start. */
  init(): Promise<void>;
  signingKey(): SigningKey;
  verificationKey(kid: string): KeyLike | undefined;
  /** Public keys only (next, current, previous). */
  jwks(): { keys: JWK[] };
  /** One step: previous→retired, current→previous, next→current, a new next. Concurrent calls share one step. */
  rotate(): Promise<void>;
  /** Re-reads the store, to follow a rotation made by another replica. */
  reload(): Promise<void>;
  status(): KeyStatus[];
}

interface View {
  byKid: Map<string, { record: Omit<KeyRecord, 'private_jwk'>; publicKey: KeyLike }>;
  signing: SigningKey;
  jwks: { keys: JWK[] };
  /** For status(); private halves are not kept. */
  keys: Array<Omit<KeyRecord, 'private_jwk'>>;
}

const PUBLISHED: ReadonlySet<KeyState> = new Set(['next', 'current', 'previous']);

export function createKeyRing(deps: KeyRingDeps): KeyRing {
  const { store, clock, maxTokenTtlMs, clockSkewMs } = deps;
  let view: View | undefined;
  let tail: Promise<unknown> = Promise.resolve();
  let pendingRotation: Promise<void> | undefined;

  /** init, rotate and reload run one at a time, so a slow reload cannot overwrite a newer rotation. */
  function exclusive<T>(run: () => Promise<T>): Promise<T> {
    const result = tail.then(run, run);
    tail = result.catch(() => undefined);
    return result;
  }

  function current(): View {
    if (!view) throw new Error('key ring is not initialised: call init() first');
    return view;
  }

  function verifiesUntil(key: Pick<KeyRecord, 'state' | 'retired_at'>): number {
    return key.state === 'retired' ? (key.retired_at ?? 0) + maxTokenTtlMs + clockSkewMs : Number.POSITIVE_INFINITY;
  }

  async function loadRing(): Promise<OpenedKeyRing> {
    const ring = await store.load();
    if (!ring) throw new Error('key store is empty: the signing key ring was removed');
    return ring;
  }

  async function viewOf(ring: OpenedKeyRing): Promise<View> {
    checkShape(ring);
    const byKid: View['byKid'] = new Map();
    const keys: View['keys'] = [];
    const published: JWK[] = [];
    let signing: SigningKey | undefined;
    for (const { private_jwk, ...record } of ring.keys) {
      const { kty, crv, x } = record.public_jwk;
      keys.push(record);
      byKid.set(record.kid, { record, publicKey: (await importJWK({ kty, crv, x }, SIGNING_ALG)) as KeyLike });
      // Only the current key's private half is imported: nothing else signs.
      if (record.state === 'current') signing = { kid: record.kid, privateKey: (await importJWK({ ...private_jwk }, SIGNING_ALG)) as KeyLike };
      // Built member by member from the public half: a private `d` can never slip in.
      if (PUBLISHED.has(record.state)) published.push(Object.freeze({ kty, crv, x, kid: record.kid, alg: SIGNING_ALG, use: 'sig' }));
    }
    return { byKid, keys, signing: signing!, jwks: Object.freeze({ keys: Object.freeze(published) as JWK[] }) };
  }

  async function doInit(): Promise<void> {
    if (view) return;
    const existing = await store.load();
    if (existing) {
      view = await viewOf(existing);
      return;
    }
    const now = clock.now();
    const ring: OpenedKeyRing = { keys: [await createSigningKey('current', now), await createSigningKey('next', now)] };
    const built = await viewOf(ring);
    await store.save(ring);
    view = built;
  }

  async function doRotate(): Promise<void> {
    current();
    const latest = await loadRing();
    const now = clock.now();
    const keys: KeyRecord[] = latest.keys
      // A retired key whose window has passed can verify nothing any more: drop it for good.
      .filter((key) => !(key.state === 'retired' && verifiesUntil(key) < now))
      .map((key): KeyRecord => {
        switch (key.state) {
          case 'previous':
            return { ...key, state: 'retired', retired_at: now };
          case 'current':
            return { ...key, state: 'previous' };
          case 'next':
            return { ...key, state: 'current', activated_at: now };
          default:
            return key;
        }
      });
    keys.push(await createSigningKey('next', now));
    const ring: OpenedKeyRing = { keys };
    const built = await viewOf(ring);
    await store.save(ring);
    view = built;
  }

  return {
    maxTokenTtlMs,

    init: () => exclusive(doInit),

    signingKey: () => current().signing,

    verificationKey(kid) {
      const entry = view?.byKid.get(kid);
      if (!entry) return undefined;
      return clock.now() <= verifiesUntil(entry.record) ? entry.publicKey : undefined;
    },

    jwks: () => current().jwks,

    rotate() {
      pendingRotation ??= exclusive(doRotate).finally(() => {
        pendingRotation = undefined;
      });
      return pendingRotation;
    },

    reload: () =>
      exclusive(async () => {
        current();
        view = await viewOf(await loadRing());
      }),

    status() {
      const now = clock.now();
      return current().keys.map((key) => ({
        kid: key.kid,
        state: key.state,
        ageMs: now - key.created_at,
        createdAt: key.created_at,
        ...(key.activated_at !== undefined ? { activatedAt: key.activated_at } : {}),
        ...(key.retired_at !== undefined ? { retiredAt: key.retired_at } : {}),
      }));
    },
  };
}

/** Exactly one current and one next, at most one previous, no duplicate kids. */
function checkShape(ring: OpenedKeyRing): void {
  const count = (state: KeyState) => ring.keys.filter((key) => key.state === state).length;
  if (count('current') !== 1 || count('next') !== 1 || count('previous') > 1) {
    throw new Error('key ring must hold exactly one current key, one next key and at most one previous key');
  }
  if (new Set(ring.keys.map((key) => key.kid)).size !== ring.keys.length) throw new Error('key ring holds a duplicate kid');
}
