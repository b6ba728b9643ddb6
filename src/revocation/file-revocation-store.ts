import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import type { DenyReason } from '../errors';
import { openJsonlJournal, type JsonlJournal } from '../journal/jsonl-journal';
import { assertRevocation, inForce, isRevocationTarget, notBeforeOf, revocationKey, untilPastSecond, type LiftableTarget, type RevocationRecord, type RevocationStore, type RevocationSubject } from './revocation-store';

/**
 * The embedded revocation store: an in-memory index answers `check` (every authorize calls it, so it
 * does no I/O and allocates nothing), and `revocations.jsonl` under the data dir makes every revocation
 * durable before `revoke` resolves. A `{restore: tenant}` line lifts a tenant revocation for tokens
 * issued after the latest revoke (its `at` stays the tenant's "not before", rebuilt from the same lines
 * on restart); a `{lift: target}` line lifts a principal, session or token revocation entirely. A
 * revocation with `expiresAt` stops denying then (checked against the clock on every call) and drops
 * out of `list`; its line stays, and replays as expired. The memory variant is the same store without the file.
 *
 * Durable, then in effect: a change reaches the index only once its line is fsynced, applied in file
 * order (the journal's `onDurable`), so the index is always exactly what a restart would replay. A
 * revoke or restore that failed to store is therefore not in effect either, and its error ("nothing was
 * revoked") is the truth, now and after a restart. The revoke has not answered while its line is being
 * written, so nobody has been promised it is in effect yet.
 */
export const REVOCATIONS_FILE = 'revocations.jsonl';

export interface FileRevocationStoreOptions {
  dataDir: string;
  clock?: Clock;
}

type RestoreLine = { restore: string; at: number };
type LiftLine = { lift: LiftableTarget; at: number };
/** Makes the entry durable, then applies it (`apply` runs in file order). */
type Persist = (entry: RevocationRecord | RestoreLine | LiftLine, apply: () => void) => Promise<void>;

export async function createFileRevocationStore(options: FileRevocationStoreOptions): Promise<RevocationStore & { close(): Promise<void> }> {
  const path = join(options.dataDir, REVOCATIONS_FILE);
  const { entries, journal } = await openJsonlJournal(path);
  const clock = options.clock ?? systemClock;
  const index = createRevocationIndex(clock);
  try {
    entries.forEach((entry, i) => replay(index, entry, `${path}:${i + 1}`));
  } catch (err) {
    await journal.close();
    throw err;
  }
  return createStore(index, (entry, apply) => journal.append(entry, apply), clock, journal);
}

/** For tests and single-shot tools: identical behaviour, nothing survives the process. */
export function createMemoryRevocationStore(options: { clock?: Clock } = {}): RevocationStore & { close(): Promise<void> } {
  const clock = options.clock ?? systemClock;
  return createStore(createRevocationIndex(clock), async (_entry, apply) => apply(), clock, null);
}

function createStore(index: RevocationIndex, persist: Persist, clock: Clock, journal: JsonlJournal | null): RevocationStore & { close(): Promise<void> } {
  return {
    async revoke(record) {
      assertRevocation(record);
      const copy = copyRecord(record);
      await persist(copy, () => index.revoke(copy));
    },
    async lift(target) {
      assertRevocation({ target, at: 0 });
      const held = index.records.get(revocationKey(target));
      if (!held || !inForce(held.expiresAt, clock.now())) return null;
      await persist({ lift: { ...target }, at: clock.now() }, () => index.lift(target));
      return copyRecord(held);
    },
    async list(now) {
      const out: RevocationRecord[] = [];
      for (const record of index.records.values()) {
        if (record.target.kind === 'tenant' ? index.tenants.has(record.target.tenant) : inForce(record.expiresAt, now)) out.push(copyRecord(record));
      }
      return out;
    },
    async restoreTenant(tenant) {
      if (!index.tenants.has(tenant)) return false;
      // Applied in file order: a revoke written after this restore lands after it in the index too, as on replay.
      await persist({ restore: tenant, at: clock.now() }, () => index.tenants.delete(tenant));
      await untilPastSecond(clock, index.notBefore.get(tenant)!);
      return true;
    },
    check: (subject) => index.check(subject),
    async isTenantRevoked(tenant) {
      return index.tenants.has(tenant);
    },
    async close() {
      await journal?.close();
    },
  };
}

interface RevocationIndex {
  /** Revoked tenants. */
  tenants: Set<string>;
  /** Every tenant ever revoked → its latest revoke's second: tokens with iat ≤ it stay revoked after a restore. */
  notBefore: Map<string, number>;
  /** The latest revoke per key, for listing and lifting (tenants stay in it after a restore; `tenants` says which are in force). */
  records: Map<string, RevocationRecord>;
  revoke(record: RevocationRecord): void;
  lift(target: LiftableTarget): void;
  check(subject: RevocationSubject): Promise<DenyReason | null>;
}

// Settled promises made once, so the hot path hands back an existing object instead of allocating one.
const NOT_REVOKED = Promise.resolve(null);
const ANSWER: Record<'tenant_revoked' | 'principal_revoked' | 'session_revoked' | 'token_revoked', Promise<DenyReason>> = {
  tenant_revoked: Promise.resolve('tenant_revoked'),
  principal_revoked: Promise.resolve('principal_revoked'),
  session_revoked: Promise.resolve('session_revoked'),
  token_revoked: Promise.resolve('token_revoked'),
};

/** No expiry: a revocation that denies until it is lifted. */
const FOREVER = Number.POSITIVE_INFINITY;

function createRevocationIndex(clock: Clock): RevocationIndex {
  const tenants = new Set<string>();
  const notBefore = new Map<string, number>();
  const records = new Map<string, RevocationRecord>();
  // Principal ids are only unique within a tenant, so they are nested under it (no string building per check).
  // Each map holds the revocation's expiry (epoch ms, FOREVER without a TTL); the clock is read only on a hit.
  const principals = new Map<string, Map<string, number>>();
  const sessions = new Map<string, number>();
  const jtis = new Map<string, number>();
  const live = (expiresAt: number | undefined) => expiresAt !== undefined && (expiresAt === FOREVER || expiresAt > clock.now());

  return {
    tenants,
    notBefore,
    records,
    revoke(record) {
      const { target } = record;
      records.set(revocationKey(target), record);
      // The latest revoke of a key decides its expiry: an operator can extend a TTL or make it permanent.
      const until = record.expiresAt ?? FOREVER;
      switch (target.kind) {
        case 'tenant':
          tenants.add(target.tenant);
          notBefore.set(target.tenant, Math.max(notBefore.get(target.tenant) ?? Number.NEGATIVE_INFINITY, notBeforeOf(record.at)));
          return;
        case 'principal': {
          let map = principals.get(target.tenant);
          if (!map) principals.set(target.tenant, (map = new Map()));
          map.set(target.principal, until);
          return;
        }
        case 'session':
          sessions.set(target.session, until);
          return;
        case 'jti':
          jtis.set(target.jti, until);
          return;
      }
    },
    lift(target) {
      records.delete(revocationKey(target));
      switch (target.kind) {
        case 'principal':
          principals.get(target.tenant)?.delete(target.principal);
          return;
        case 'session':
          sessions.delete(target.session);
          return;
        case 'jti':
          jtis.delete(target.jti);
          return;
      }
    },
    // Same precedence as subjectKeys(): tenant, principal, session, then token.
    check(subject) {
      if (tenants.has(subject.tid) || subject.iat <= (notBefore.get(subject.tid) ?? Number.NEGATIVE_INFINITY)) return ANSWER.tenant_revoked;
      if (live(principals.get(subject.tid)?.get(subject.sub))) return ANSWER.principal_revoked;
      if (live(sessions.get(subject.sid))) return ANSWER.session_revoked;
      if (live(jtis.get(subject.jti))) return ANSWER.token_revoked;
      return NOT_REVOKED;
    },
  };
}

function replay(index: RevocationIndex, entry: unknown, where: string): void {
  const e = entry as Partial<RevocationRecord & RestoreLine & LiftLine> | null;
  if (e !== null && typeof e === 'object' && typeof e.restore === 'string') {
    index.tenants.delete(e.restore);
    return;
  }
  if (e !== null && typeof e === 'object' && e.lift !== undefined) {
    if (!isRevocationTarget(e.lift) || (e.lift as { kind: string }).kind === 'tenant') throw new Error(`${where}: not a lift entry`);
    index.lift(e.lift);
    return;
  }
  if (e === null || typeof e !== 'object' || !isRevocationTarget(e.target)) {
    // Skipping an entry we cannot read could un-revoke someone: refuse to start instead.
    throw new Error(`${where}: not a revocation or restore entry`);
  }
  if (e.expiresAt !== undefined && (typeof e.expiresAt !== 'number' || !Number.isFinite(e.expiresAt))) throw new Error(`${where}: a revocation's expiresAt is not a time`);
  // Journals written before "not before" existed still carry `at`; without one, fail closed (every old token).
  const at = typeof e.at === 'number' && Number.isFinite(e.at) ? e.at : Number.MAX_SAFE_INTEGER;
  index.revoke(copyRecord({ target: e.target, at, reason: typeof e.reason === 'string' ? e.reason : undefined, expiresAt: e.expiresAt, tenant: typeof e.tenant === 'string' ? e.tenant : undefined }));
}

function copyRecord(record: RevocationRecord): RevocationRecord {
  return {
    target: { ...record.target },
    at: record.at,
    ...(record.reason === undefined ? {} : { reason: record.reason }),
    ...(record.expiresAt === undefined ? {} : { expiresAt: record.expiresAt }),
    ...(record.tenant === undefined ? {} : { tenant: record.tenant }),
  };
}
