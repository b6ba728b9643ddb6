import { join } from 'node:path';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import { openJsonlJournal, type JsonlJournal } from '../journal/jsonl-journal';
import { replaceFile } from '../storage/atomic-file';
import type { CallRecord, QuarantineEntry, SessionStore } from './session-store';

/**
 * The embedded session store, for one process. Live sessions and in-flight calls live in memory with
 * expiries (pruned as they are read, and by a sweep at most once a minute so idle tenants cost nothing).
 * Quarantine is a security decision, so with a `dataDir` it is also written to `quarantine.jsonl` and
 * fsynced before `quarantine` resolves, and reloaded on start: a restart never releases a session; a
 * `{lift: true}` line (an operator's release) is fsynced before `liftQuarantine` resolves, and replayed too.
 */
export const QUARANTINE_FILE = 'quarantine.jsonl';
const SWEEP_INTERVAL_MS = 60_000;

export interface MemorySessionStoreOptions {
  clock: Clock;
  /** Makes quarantines durable; without it they last as long as the process. */
  dataDir?: string;
}

type QuarantineLine = { tenant: string; session: string; reason: string; at: number; lift?: true };

export function createMemorySessionStore(options: MemorySessionStoreOptions): SessionStore & { ready(): Promise<void>; close(): Promise<void> } {
  const { clock } = options;
  const sessions = new Map<string, Map<string, number>>();
  /** Tenant → principal → the latest expiry of a token it was issued. */
  const principals = new Map<string, Map<string, number>>();
  const quarantined = new Map<string, Map<string, QuarantineEntry>>();
  const calls = new Map<string, { call: CallRecord; expiresAt: number }>();
  let lastSweep = clock.now();

  const markQuarantined = (entry: QuarantineLine) => {
    if (entry.lift) {
      quarantined.get(entry.tenant)?.delete(entry.session);
      return;
    }
    let map = quarantined.get(entry.tenant);
    if (!map) quarantined.set(entry.tenant, (map = new Map()));
    // The first quarantine's reason is the one an operator reviews; a repeat does not replace it.
    if (!map.has(entry.session)) map.set(entry.session, { tenant: entry.tenant, session: entry.session, reason: entry.reason, at: entry.at });
  };

  // Loaded once; every method waits for it, so a damaged file fails calls (closed) rather than forgetting quarantines.
  // (Replaced only by forgetTenant, which rewrites the file and opens it again.)
  let loading: Promise<JsonlJournal | null> = options.dataDir === undefined ? Promise.resolve(null) : loadQuarantines(join(options.dataDir, QUARANTINE_FILE), markQuarantined);
  // Keep an unobserved failure from crashing the process; callers see it when they await `loading`.
  loading.catch(() => undefined);

  function sweep(now: number): void {
    if (now - lastSweep < SWEEP_INTERVAL_MS) return;
    lastSweep = now;
    for (const [tenant, live] of sessions) {
      for (const [session, expiresAt] of live) if (expiresAt <= now) live.delete(session);
      if (live.size === 0) sessions.delete(tenant);
    }
    for (const [tenant, seen] of principals) {
      for (const [principal, expiresAt] of seen) if (expiresAt <= now) seen.delete(principal);
      if (seen.size === 0) principals.delete(tenant);
    }
    for (const [callId, entry] of calls) if (entry.expiresAt <= now) calls.delete(callId);
  }

  return {
    async ready() {
      await loading;
    },

    async touch(tenant, session, expiresAt, principal) {
      await loading;
      sweep(clock.now());
      let live = sessions.get(tenant);
      if (!live) sessions.set(tenant, (live = new Map()));
      // A refreshed token keeps the session alive; an older token's touch never shortens it.
      live.set(session, Math.max(expiresAt, live.get(session) ?? -Infinity));
      if (principal !== undefined) {
        let seen = principals.get(tenant);
        if (!seen) principals.set(tenant, (seen = new Map()));
        seen.set(principal, Math.max(expiresAt, seen.get(principal) ?? -Infinity));
      }
    },

    async hasLivePrincipal(tenant, principal, now) {
      await loading;
      return (principals.get(tenant)?.get(principal) ?? -Infinity) > now;
    },

    async liveSessions(tenant, now) {
      await loading;
      const live = sessions.get(tenant);
      if (!live) return 0;
      for (const [session, expiresAt] of live) if (expiresAt <= now) live.delete(session);
      if (live.size === 0) sessions.delete(tenant);
      return live.size;
    },

    async tenantOfSession(session, tenants) {
      await loading;
      return tenants.find((tenant) => sessions.get(tenant)?.has(session)) ?? null;
    },

    async quarantine(tenant, session, reason) {
      const journal = await loading;
      // In effect at once; durable (when configured) before this resolves.
      const line: QuarantineLine = { tenant, session, reason, at: clock.now() };
      markQuarantined(line);
      await journal?.append(line);
    },

    async isQuarantined(tenant, session) {
      await loading;
      return quarantined.get(tenant)?.has(session) === true;
    },

    async quarantines(tenant) {
      await loading;
      const maps = tenant === undefined ? [...quarantined.values()] : [quarantined.get(tenant) ?? new Map<string, QuarantineEntry>()];
      return maps.flatMap((map) => [...map.values()].map((entry) => ({ ...entry })));
    },

    async liftQuarantine(tenant, session) {
      const journal = await loading;
      const entry = quarantined.get(tenant)?.get(session);
      if (!entry) return null;
      // Durable first, then released: a lift that failed to store has not happened, now or after a restart.
      const line: QuarantineLine = { tenant, session, reason: entry.reason, at: clock.now(), lift: true };
      await journal?.append(line);
      markQuarantined(line);
      return { ...entry };
    },

    async putCall(call, ttlMs) {
      await loading;
      const now = clock.now();
      sweep(now);
      const existing = calls.get(call.call_id);
      // A live call id belongs to whoever opened it; letting a second put replace it would let one
      // caller complete (or strip the leases of) another's call.
      if (existing && existing.expiresAt > now) throw new BrokerError('bad_request', 'call_id is already in use');
      calls.set(call.call_id, { call: copyCall(call), expiresAt: now + Math.max(1, ttlMs) });
    },

    async hasCall(callId) {
      await loading;
      const entry = calls.get(callId);
      return entry !== undefined && entry.expiresAt > clock.now();
    },

    async takeCall(callId, server) {
      await loading;
      const entry = calls.get(callId);
      if (!entry || (server !== undefined && entry.call.server !== server)) return null;
      calls.delete(callId);
      return entry.expiresAt > clock.now() ? copyCall(entry.call) : null;
    },

    async leasesOf(filter) {
      await loading;
      const now = clock.now();
      const out: CallRecord[] = [];
      for (const [callId, { call, expiresAt }] of calls) {
        if (expiresAt <= now) {
          calls.delete(callId);
          continue;
        }
        if (call.lease_ids.length === 0) continue;
        if (filter.tenant !== undefined && call.tenant !== filter.tenant) continue;
        if (filter.session !== undefined && call.session !== filter.session) continue;
        if (filter.principal !== undefined && call.principal !== filter.principal) continue;
        out.push(copyCall(call));
      }
      return out;
    },

    async tenantSessions(tenant, now) {
      await loading;
      const live = [...(sessions.get(tenant) ?? [])].filter(([, expiresAt]) => expiresAt > now).map(([session, expiresAt]) => ({ session, expires_at: expiresAt }));
      return { live, quarantined: [...(quarantined.get(tenant)?.keys() ?? [])] };
    },

    async forgetTenant(tenant) {
      const journal = await loading;
      sessions.delete(tenant);
      principals.delete(tenant);
      quarantined.delete(tenant);
      for (const [callId, entry] of calls) if (entry.call.tenant === tenant) calls.delete(callId);
      if (!journal || !options.dataDir) return;
      // The journal is append-only, so the file is rewritten without the tenant's lines (atomically: a
      // crash leaves the old file and a rerun rewrites it). Quarantines of other tenants made meanwhile
      // wait on the reopened journal, so none is lost.
      const path = join(options.dataDir, QUARANTINE_FILE);
      const reopened = (async () => {
        await journal.close();
        const { entries, journal: reading } = await openJsonlJournal(path);
        await reading.close();
        const kept = (entries as QuarantineLine[]).filter((e) => e.tenant !== tenant);
        if (kept.length !== entries.length) await replaceFile(path, kept.map((e) => JSON.stringify(e) + '\n').join(''));
        return loadQuarantines(path, () => undefined);
      })();
      // A failed rewrite (a full disk) still leaves a working journal; the delete step fails and is rerun.
      loading = reopened.catch(() => loadQuarantines(path, () => undefined));
      loading.catch(() => undefined);
      await reopened;
    },

    async close() {
      const journal = await loading.catch(() => null);
      await journal?.close();
      sessions.clear();
      calls.clear();
    },
  };
}

async function loadQuarantines(path: string, mark: (entry: QuarantineLine) => void): Promise<JsonlJournal> {
  const { entries, journal } = await openJsonlJournal(path);
  try {
    entries.forEach((entry, i) => {
      const e = entry as Partial<QuarantineLine> | null;
      if (e === null || typeof e !== 'object' || typeof e.tenant !== 'string' || typeof e.session !== 'string') {
        throw new Error(`${path}:${i + 1}: not a quarantine entry`);
      }
      mark({ tenant: e.tenant, session: e.session, reason: typeof e.reason === 'string' ? e.reason : '', at: typeof e.at === 'number' ? e.at : 0, ...(e.lift === true ? { lift: true as const } : {}) });
    });
  } catch (err) {
    await journal.close();
    throw err;
  }
  return journal;
}

/** Records are copied in and out so no caller can change what the store holds. */
function copyCall(call: CallRecord): CallRecord {
  return { ...call, lease_ids: [...call.lease_ids] };
}
