import type { Pool, PoolClient } from 'pg';
import { buildRecord, checkHead, createChainVerifier, type ChainHead } from '../../audit/chain';
import { GENESIS_HASH, type AuditEvent, type AuditLog, type AuditRecord, type AuditVerifyResult } from '../../audit/audit-log';
import type { Clock } from '../../clock';
import { startDeadline } from '../../deadline';
import { BrokerError } from '../../errors';
import { describeError, notReady, READY } from '../../observability/readiness';
import { purgeAuditRows } from './audit-purge';
import { inTransaction } from './pool';

/**
 * The shared audit log: per-tenant hash chains in PostgreSQL, written by every replica at once.
 *
 * Ordering across replicas: a writer locks the tenant's head row (SELECT … FOR UPDATE) inside the
 * transaction that inserts the records and moves the head, so writers of one tenant take turns, each
 * builds on the head the previous one committed, and seq stays gap-free (a rolled-back batch leaves the
 * head where it was). Different tenants never wait for each other.
 *
 * Group commit: `append` only queues. A flusher takes each tenant's queue and writes it in one
 * transaction (one commit, synchronous_commit on), and only after COMMIT resolves those promises, so an
 * allow is never answered before its record is durable. If the transaction fails, the whole batch
 * rejects with `audit_unavailable` and nothing of it is stored.
 *
 * Bounded wait: each append is answered within `timeoutMs` of being queued, however the server fails
 * (down, hung, dropping connections). A batch's transaction runs under one deadline, the one of its
 * oldest record; a record whose time ran out while an earlier batch held the line is refused without
 * being written. A record is therefore never stored after its caller was told it failed, except in the
 * one case no client can rule out: the server received COMMIT and the answer never came back.
 */
export interface PostgresAuditLogOptions {
  pool: Pool;
  clock: Clock;
  /** How long the first append of an idle log waits for company before the flush. */
  groupCommitMs?: number;
  /** Most records one tenant writes in one transaction. */
  maxBatch?: number;
  /** Longest an append waits for its commit, from the moment it is queued (default 2 s). */
  timeoutMs?: number;
}

interface Pending {
  event: AuditEvent;
  ts: string;
  /** performance.now() when queued: the start of this record's bounded wait. */
  queuedAt: number;
  resolve(record: AuditRecord): void;
  reject(error: unknown): void;
}

const PAGE = 1000;

export function createPostgresAuditLog(options: PostgresAuditLogOptions): AuditLog & { stats(): { records: number; batches: number; failedBatches: number } } {
  const { pool, clock } = options;
  const groupCommitMs = options.groupCommitMs ?? 2;
  const maxBatch = options.maxBatch ?? 500;
  const timeoutMs = options.timeoutMs ?? 2000;
  const queues = new Map<string, Pending[]>();
  const counters = { records: 0, batches: 0, failedBatches: 0 };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closing = false;

  const hasPending = () => [...queues.values()].some((q) => q.length > 0);

  function schedule(): void {
    if (timer || running) return;
    timer = setTimeout(() => {
      timer = undefined;
      running = drain().finally(() => {
        running = undefined;
        if (hasPending()) schedule();
      });
    }, groupCommitMs);
  }

  async function drain(): Promise<void> {
    for (;;) {
      const busy = [...queues.entries()].filter(([, q]) => q.length > 0);
      if (busy.length === 0) return;
      await Promise.all(busy.map(([tenant, queue]) => flush(tenant, queue.splice(0, maxBatch))));
    }
  }

  async function lockHead(client: PoolClient, tenant: string): Promise<ChainHead> {
    const select = () => client.query<{ seq: string; hash: string }>('SELECT seq, hash FROM bulkhead_audit_heads WHERE tenant = $1 FOR UPDATE', [tenant]);
    let head = await select();
    if (head.rowCount === 0) {
      // First record of this tenant anywhere: create the head (another replica may do so at the same time).
      await client.query('INSERT INTO bulkhead_audit_heads (tenant, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (tenant) DO NOTHING', [tenant, GENESIS_HASH]);
      head = await select();
    }
    const row = head.rows[0]!;
    return { seq: Number(row.seq), hash: row.hash };
  }

  async function flush(tenant: string, batch: Pending[]): Promise<void> {
    // Records are queued in order, so the first one's time runs out first.
    const remainingMs = batch[0]!.queuedAt + timeoutMs - performance.now();
    const deadline = startDeadline(remainingMs, 'audit commit');
    try {
      deadline.signal.throwIfAborted();
      const records = await inTransaction(pool, async (client) => {
        let head = await lockHead(client, tenant);
        const built = batch.map((p) => {
          const record = buildRecord(tenant, head, p.ts, p.event);
          head = { seq: record.seq, hash: record.hash };
          return record;
        });
        await client.query(
          `WITH inserted AS (
             INSERT INTO bulkhead_audit (tenant, seq, hash, record)
             SELECT $1, s, h, r FROM unnest($2::bigint[], $3::text[], $4::text[]) AS t(s, h, r)
           )
           UPDATE bulkhead_audit_heads SET seq = $5, hash = $6 WHERE tenant = $1`,
          [tenant, built.map((r) => r.seq), built.map((r) => r.hash), built.map((r) => JSON.stringify(r)), head.seq, head.hash],
        );
        return built;
      }, deadline.signal);
      // Committed: only now are these records acknowledged.
      counters.batches += 1;
      counters.records += records.length;
      batch.forEach((p, i) => p.resolve(records[i]!));
    } catch (err) {
      counters.failedBatches += 1;
      const error = new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
      for (const p of batch) p.reject(error);
    } finally {
      deadline.cancel();
    }
  }

  async function query<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
    }
  }

  return {
    append(tenant, event) {
      if (closing) return Promise.reject(new BrokerError('audit_unavailable', 'audit log is closed'));
      let queue = queues.get(tenant);
      if (!queue) queues.set(tenant, (queue = []));
      const pending = queue;
      return new Promise<AuditRecord>((resolve, reject) => {
        // Copied now: a caller mutating its object after append must not change what is recorded.
        pending.push({ event: { ...event }, ts: new Date(clock.now()).toISOString(), queuedAt: performance.now(), resolve, reject });
        schedule();
      });
    },

    read(tenant, { afterSeq = 0, limit = Number.POSITIVE_INFINITY } = {}) {
      return query(async () => {
        if (limit <= 0) return [];
        const result = await pool.query<{ record: string }>('SELECT record FROM bulkhead_audit WHERE tenant = $1 AND seq > $2 ORDER BY seq LIMIT $3', [
          tenant,
          afterSeq,
          Number.isFinite(limit) ? limit : null,
        ]);
        const out: AuditRecord[] = [];
        for (const row of result.rows) {
          let record: AuditRecord;
          try {
            record = JSON.parse(row.record) as AuditRecord;
          } catch {
            continue; // verify() reports it; a reader still sees the rest.
          }
          // Never hand out a record that names another tenant, even if one was copied into this stream.
          if (record?.tenant === tenant) out.push(record);
        }
        return out;
      });
    },

    verify(tenant, options = {}): Promise<AuditVerifyResult> {
      return query(async () => {
        // The head first: records up to it are committed (head and records move in one transaction),
        // and records other replicas append while this runs are beyond it and not read.
        const headRow = await pool.query<{ seq: string; hash: string }>('SELECT seq, hash FROM bulkhead_audit_heads WHERE tenant = $1', [tenant]);
        const acknowledged: ChainHead = headRow.rows[0] ? { seq: Number(headRow.rows[0].seq), hash: headRow.rows[0].hash } : { seq: 0, hash: GENESIS_HASH };
        const verifier = createChainVerifier(tenant, options.pins);
        let after = 0;
        for (;;) {
          const page = await pool.query<{ seq: string; record: string }>('SELECT seq, record FROM bulkhead_audit WHERE tenant = $1 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4', [
            tenant,
            after,
            acknowledged.seq,
            PAGE,
          ]);
          for (const row of page.rows) if (!verifier.nextLine(row.record)) return checkHead(verifier.result(), acknowledged);
          if (page.rows.length < PAGE) break;
          after = Number(page.rows[page.rows.length - 1]!.seq);
        }
        return checkHead(verifier.result(), acknowledged);
      });
    },

    tenants() {
      return query(async () => (await pool.query<{ tenant: string }>('SELECT tenant FROM bulkhead_audit_heads ORDER BY tenant')).rows.map((r) => r.tenant));
    },

    purge: (tenant) => query(() => purgeAuditRows(pool, tenant)),

    async ready() {
      if (closing) return notReady('audit log is closed');
      return pool.query('SELECT 1').then(
        () => READY,
        (err: unknown) => notReady(describeError(err)),
      );
    },

    async close() {
      closing = true;
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
      if (running) await running;
      await drain();
    },

    stats: () => ({ ...counters }),
  };
}
