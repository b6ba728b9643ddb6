import { join } from 'node:path';
import { systemClock, type Clock } from '../clock';
import { BrokerError, type DenyReason } from '../errors';
import { openJsonlJournal, type JsonlJournal } from '../journal/jsonl-journal';
import { notBeforeOf, untilPastSecond, type RevocationRecord, type RevocationStore, type RevocationSubject, type RevocationTarget } from './revocation-store';

/**
 * The embedded revocation store: an in-memory index answers `check` (every authorize calls it, so it
 * does no I/O and allocates nothing), and `revocations.jsonl` under the data dir makes every revocation
 * durable before `revoke` resolves. A `{restore: tenant}` line lifts a tenant revocation for tokens
 * issued after the latest revoke (its `at` stays the tenant's "not before", rebuilt from the same lines
 * on restart); sessions, principals and tokens have no way back. The memory variant is the same store without the file.
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
/** Makes the entry durable, then applies it (`apply` runs in file order). */
type Persist = (entry: RevocationRecord | RestoreLine, apply: () => void) => Promise<void>;

export async function createFileRevocationStore(options: FileRevocationStoreOptions): Promise<RevocationStore & { close(): Promise<void> }> {
  const path = join(options.dataDir, REVOCATIONS_FILE);
  const { entries, journal } = await openJsonlJournal(path);
  const index = createRevocationIndex();
  try {
    entries.forEach((entry, i) => replay(index, entry, `${path}:${i + 1}`));
  } catch (err) {
    await journal.close();
    throw err;
  }
  return createStore(index, (entry, apply) => journal.append(entry, apply), options.clock ?? systemClock, journal);
}

/** For tests and single-shot tools: identical behaviour, nothing survives the process. */
export function createMemoryRevocationStore(options: { clock?: Clock } = {}): RevocationStore & { close(): Promise<void> } {
  return createStore(createRevocationIndex(), async (_entry, apply) => apply(), options.clock ?? systemClock, null);
}

function createStore(index: RevocationIndex, persist: Persist, clock: Clock, journal: JsonlJournal | null): RevocationStore & { close(): Promise<void> } {
  return {
    async revoke(record) {
      assertTarget(record.target);
      const copy: RevocationRecord = { target: { ...record.target }, at: record.at, ...(record.reason === undefined ? {} : { reason: record.reason }) };
      await persist(copy, () => index.revoke(copy.target, copy.at));
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
  revoke(target: RevocationTarget, at: number): void;
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

function createRevocationIndex(): RevocationIndex {
  const tenants = new Set<string>();
  const notBefore = new Map<string, number>();
  // Principal ids are only unique within a tenant, so they are nested under it (no string building per check).
  const principals = new Map<string, Set<string>>();
  const sessions = new Set<string>();
  const jtis = new Set<string>();

  return {
    tenants,
    notBefore,
    revoke(target, at) {
      switch (target.kind) {
        case 'tenant':
          tenants.add(target.tenant);
          notBefore.set(target.tenant, Math.max(notBefore.get(target.tenant) ?? Number.NEGATIVE_INFINITY, notBeforeOf(at)));
          return;
        case 'principal': {
          let set = principals.get(target.tenant);
          if (!set) principals.set(target.tenant, (set = new Set()));
          set.add(target.principal);
          return;
        }
        case 'session':
          sessions.add(target.session);
          return;
        case 'jti':
          jtis.add(target.jti);
          return;
      }
    },
    // Same precedence as subjectKeys(): tenant, principal, session, then token.
    check(subject) {
      if (tenants.has(subject.tid) || subject.iat <= (notBefore.get(subject.tid) ?? Number.NEGATIVE_INFINITY)) return ANSWER.tenant_revoked;
      if (principals.get(subject.tid)?.has(subject.sub)) return ANSWER.principal_revoked;
      if (sessions.has(subject.sid)) return ANSWER.session_revoked;
      if (jtis.has(subject.jti)) return ANSWER.token_revoked;
      return NOT_REVOKED;
    },
  };
}

function replay(index: RevocationIndex, entry: unknown, where: string): void {
  const e = entry as Partial<RevocationRecord & RestoreLine> | null;
  if (e !== null && typeof e === 'object' && typeof e.restore === 'string') {
    index.tenants.delete(e.restore);
    return;
  }
  if (e === null || typeof e !== 'object' || !isTarget(e.target)) {
    // Skipping an entry we cannot read could un-revoke someone: refuse to start instead.
    throw new Error(`${where}: not a revocation or restore entry`);
  }
  // Journals written before "not before" existed still carry `at`; without one, fail closed (every old token).
  index.revoke(e.target, typeof e.at === 'number' && Number.isFinite(e.at) ? e.at : Number.MAX_SAFE_INTEGER);
}

function assertTarget(target: RevocationTarget): void {
  if (!isTarget(target)) throw new BrokerError('bad_request', 'a revocation needs exactly one complete target');
}

function isTarget(value: unknown): value is RevocationTarget {
  if (value === null || typeof value !== 'object') return false;
  const t = value as Record<string, unknown>;
  const id = (v: unknown) => typeof v === 'string' && v.length > 0;
  switch (t.kind) {
    case 'tenant':
      return id(t.tenant);
    case 'principal':
      return id(t.tenant) && id(t.principal);
    case 'session':
      return id(t.session);
    case 'jti':
      return id(t.jti);
    default:
      return false;
  }
}
