import type { DenyReason } from '../errors';
import { subjectKeys, type RevocationSubject } from '../revocation/revocation-store';

/**
 * The authorize calls this process is deciding right now, so that a kill (revoke or quarantine) can
 * reach a call whose upstream is still resolving. It is the ordering point between the two:
 *
 *   authorize: enter → … resolve (may be slow) … → final check (local revocation view, then `commit`)
 *              → audit the allow → leave
 *   kill:      make the target visible to the local view → `kill(key)` → record the kill → answer
 *
 * `kill` marks every matching call that has not committed, so its `commit` refuses (with the kill's
 * reason), and waits for every matching call that already committed until it leaves — its allow record
 * is then durable. So each call either committed before the kill, and its allow precedes the kill's
 * record in the tenant stream and is answered before the kill is, or it is denied. No I/O here: the
 * common path (nothing killed) costs a Set insert and delete.
 */
export interface InFlightCall {
  /** The final check before the allow is recorded: the reason of a kill that reached this call, or null (committed). */
  commit(): DenyReason | null;
  /** Ends the call; a kill waiting for it (committed) goes on. */
  leave(): void;
}

export interface InFlightCalls {
  enter(subject: RevocationSubject): InFlightCall;
  /** `key` is a revocation key (`revocationKey`) or a `quarantineKey`; resolves once no committed call for it is still open. */
  kill(key: string): Promise<void>;
  /** Calls currently open. */
  size(): number;
}

/** The kill key of a quarantined session (sessions are quarantined per tenant). */
export function quarantineKey(tenant: string, session: string): string {
  return `quarantine:${tenant}/${session}`;
}

/** The reason a call killed under `key` is denied with. */
export function killReason(key: string): DenyReason {
  const kind = key.slice(0, key.indexOf(':'));
  switch (kind) {
    case 'tenant':
      return 'tenant_revoked';
    case 'principal':
      return 'principal_revoked';
    case 'session':
      return 'session_revoked';
    case 'quarantine':
      return 'session_quarantined';
    default:
      return 'token_revoked';
  }
}

interface Entry {
  keys: string[];
  killed: DenyReason | null;
  committed: boolean;
  left: Promise<void>;
  markLeft(): void;
}

export function createInFlightCalls(): InFlightCalls {
  const open = new Set<Entry>();

  return {
    enter(subject) {
      let markLeft!: () => void;
      const left = new Promise<void>((resolve) => (markLeft = resolve));
      const entry: Entry = { keys: [...subjectKeys(subject).map(([key]) => key), quarantineKey(subject.tid, subject.sid)], killed: null, committed: false, left, markLeft };
      open.add(entry);
      return {
        commit() {
          if (entry.killed) return entry.killed;
          entry.committed = true;
          return null;
        },
        leave() {
          open.delete(entry);
          entry.markLeft();
        },
      };
    },

    async kill(key) {
      const reason = killReason(key);
      const waits: Promise<void>[] = [];
      for (const entry of open) {
        if (!entry.keys.includes(key)) continue;
        if (entry.committed) waits.push(entry.left);
        else entry.killed ??= reason;
      }
      await Promise.all(waits);
    },

    size: () => open.size,
  };
}
