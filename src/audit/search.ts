import type { AuditLog, AuditRecord } from './audit-log';

/**
 * Audit search: the records of one tenant that match every given field, oldest first, a page at a time.
 * Paging is by seq (`after` = the last seq of the previous page), so a page is stable while the stream
 * grows and a caller never sees a record twice. Filtering reads the stream in order, page by page:
 * nothing is indexed, and nothing of another tenant is ever read.
 */
export interface AuditFilter {
  type?: string;
  decision?: string;
  reason?: string;
  tool?: string;
  principal?: string;
  session?: string;
  server?: string;
  request_id?: string;
  /** Epoch ms, inclusive. */
  from?: number;
  /** Epoch ms, inclusive. */
  to?: number;
}

export const FILTER_FIELDS = ['type', 'decision', 'reason', 'tool', 'principal', 'session', 'server', 'request_id'] as const satisfies readonly (keyof AuditFilter & keyof AuditRecord)[];

export interface AuditPage {
  events: AuditRecord[];
  /** Pass as `after` for the next page; absent on the last page. */
  next_after?: number;
}

const READ_PAGE = 1000;

export function matches(record: AuditRecord, filter: AuditFilter): boolean {
  for (const field of FILTER_FIELDS) {
    if (filter[field] !== undefined && record[field] !== filter[field]) return false;
  }
  if (filter.from !== undefined || filter.to !== undefined) {
    const ts = Date.parse(record.ts);
    if (filter.from !== undefined && !(ts >= filter.from)) return false;
    if (filter.to !== undefined && !(ts <= filter.to)) return false;
  }
  return true;
}

export async function searchAudit(log: Pick<AuditLog, 'read'>, tenant: string, filter: AuditFilter, page: { after?: number; limit: number }): Promise<AuditPage> {
  const events: AuditRecord[] = [];
  let after = page.after ?? 0;
  for (;;) {
    const batch = await log.read(tenant, { afterSeq: after, limit: READ_PAGE });
    for (const record of batch) {
      after = record.seq;
      if (!matches(record, filter)) continue;
      events.push(record);
      // One more match would not fit: there may be more, and this seq is where the next page starts.
      if (events.length === page.limit) return { events, next_after: record.seq };
    }
    if (batch.length < READ_PAGE) return { events };
  }
}
