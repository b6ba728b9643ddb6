import type { UnfinishedCall } from './audit-log';

/**
 * Which calls of a stream have an intent record and no outcome after it (audit-log.ts, AuditEvent
 * `decision`): fed verified records in stream order. An authorize record of the same call_id that is not
 * an intent (its allow or deny) finishes the call; nothing else does.
 */
export interface UnfinishedCalls {
  note(record: Record<string, unknown>): void;
  /** Oldest first; absent when there are none, so a result without any is unchanged. */
  result(): { unfinished?: UnfinishedCall[] };
}

export function trackUnfinishedCalls(): UnfinishedCalls {
  const intents = new Map<string, number>();
  return {
    note(record) {
      if (record.type !== 'authorize' || typeof record.call_id !== 'string') return;
      if (record.decision === 'intent') intents.set(record.call_id, record.seq as number);
      else intents.delete(record.call_id);
    },
    result() {
      if (intents.size === 0) return {};
      return { unfinished: [...intents].map(([call_id, seq]) => ({ seq, call_id })).sort((a, b) => a.seq - b.seq) };
    },
  };
}
