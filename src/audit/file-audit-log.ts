import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import type { AuditEvent, AuditLog, AuditRecord, AuditVerifyResult } from './audit-log';
import { assertInPlace, openStream, scanLines, tenantFilePath, tenantFiles, writeAll, type Acknowledged, type OpenStream } from './audit-file';
import { buildRecord, checkHead, createChainVerifier, type ChainHead } from './chain';

/**
 * The embedded audit log: one append-only JSONL file per tenant, `<dir>/<tenant>.jsonl`.
 *
 * Group commit: `append` only queues. A flusher takes each tenant's queue, writes it with one write on
 * a descriptor opened with O_DSYNC (the write returns once the bytes are on stable storage, as a write
 * followed by fdatasync would), and only then resolves those promises, so an allow is never answered before its record
 * is on disk, while a burst of calls costs a handful of syncs instead of one each. Tenants flush side
 * by side. If the write or the sync fails, every promise of that batch rejects with `audit_unavailable`
 * and the acknowledged head stays where it was; the file is reopened, re-verified and cut back to that
 * head before anything else is appended.
 */

export interface FileAuditLogOptions {
  dir: string;
  clock: Clock;
  /**
   * How long the first append of an idle log waits for company before the flush. Default 0: the flush
   * starts as soon as the current turn of the event loop ends (appends made in that turn share it), and
   * appends that arrive while a flush is writing wait for the next one. Under load batches form by
   * themselves, so a wait here only adds latency to an idle log.
   */
  groupCommitMs?: number;
  /** Most records one tenant writes in one batch. */
  maxBatch?: number;
}

export interface AuditStats {
  records: number;
  /** Each batch is one synchronous-data write (O_DSYNC) of one tenant's file. */
  batches: number;
  failedBatches: number;
}

export interface FileAuditLog extends AuditLog {
  /** Repairs made when opening files (torn lines, unacknowledged records cut), for the caller to log. */
  warnings(): string[];
  stats(): AuditStats;
}

interface Pending {
  event: AuditEvent;
  ts: string;
  resolve(record: AuditRecord): void;
  reject(error: unknown): void;
}

interface Stream {
  tenant: string;
  path: string;
  queue: Pending[];
  /** Undefined until opened, and again after a failed batch (reopened and repaired on the next one). */
  open?: OpenStream;
  /** The last head this process reported durable; survives a failed batch so the reopen can check it. */
  acknowledged?: Acknowledged;
  /** What a failed batch tried to write: the only bytes after `acknowledged` a reopen may cut. */
  attempted?: Buffer;
}

export function createFileAuditLog(options: FileAuditLogOptions): FileAuditLog {
  const { dir, clock } = options;
  const groupCommitMs = options.groupCommitMs ?? 0;
  const maxBatch = options.maxBatch ?? 1000;
  const streams = new Map<string, Stream>();
  const warnings: string[] = [];
  const counters: AuditStats = { records: 0, batches: 0, failedBatches: 0 };
  let timer: { cancel(): void } | undefined;
  let running: Promise<void> | undefined;
  let closing = false;

  function streamFor(tenant: string): Stream {
    let stream = streams.get(tenant);
    if (!stream) {
      // Checked once, when the stream is made: only ids that passed are ever keys of `streams`.
      stream = { tenant, path: tenantFilePath(dir, tenant), queue: [] };
      streams.set(tenant, stream);
    }
    return stream;
  }

  const hasPending = () => [...streams.values()].some((s) => s.queue.length > 0);

  function schedule(): void {
    if (timer || running || closing) return;
    const flush = () => {
      timer = undefined;
      running = drain().finally(() => {
        running = undefined;
        if (hasPending()) schedule();
      });
    };
    if (groupCommitMs > 0) {
      const handle = setTimeout(flush, groupCommitMs);
      timer = { cancel: () => clearTimeout(handle) };
    } else {
      const handle = setImmediate(flush);
      timer = { cancel: () => clearImmediate(handle) };
    }
  }

  async function drain(): Promise<void> {
    for (;;) {
      const busy = [...streams.values()].filter((s) => s.queue.length > 0);
      if (busy.length === 0) return;
      await Promise.all(busy.map(flushStream));
    }
  }

  async function flushStream(stream: Stream): Promise<void> {
    const batch = stream.queue.splice(0, maxBatch);
    try {
      if (!stream.open) {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const acknowledged = stream.acknowledged && { ...stream.acknowledged, attempted: stream.attempted };
        stream.open = await openStream(stream.path, stream.tenant, warnings, acknowledged);
        stream.acknowledged = { ...stream.open.head, size: stream.open.size };
        stream.attempted = undefined;
      }
      const file = stream.open;
      assertInPlace(stream.path, file);
      let head: ChainHead = file.head;
      const records = batch.map((p) => {
        const record = buildRecord(stream.tenant, head, p.ts, p.event);
        head = { seq: record.seq, hash: record.hash };
        return record;
      });
      const data = Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
      stream.attempted = data;
      // O_DSYNC descriptor: when the write returns, the batch is durable (audit-file.ts openStream).
      await writeAll(file.handle, data);
      // Only now does the head move: these records are durable.
      file.head = head;
      file.size += data.length;
      stream.acknowledged = { ...head, size: file.size };
      stream.attempted = undefined;
      counters.batches += 1;
      counters.records += records.length;
      batch.forEach((p, i) => p.resolve(records[i]));
    } catch (err) {
      counters.failedBatches += 1;
      const failed = stream.open;
      stream.open = undefined;
      if (failed) await failed.handle.close().catch(() => undefined);
      const error = new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
      for (const p of batch) p.reject(error);
    }
  }

  /** Reads one tenant's complete lines; for a stream this process writes, only what it acknowledged. */
  async function scanTenant(tenant: string, onLine: (line: string) => boolean): Promise<{ trailingBytes: number; acknowledged?: ChainHead }> {
    const path = tenantFilePath(dir, tenant);
    // Snapshot before reading: bytes up to this size are complete and never rewritten.
    const known = streams.get(tenant)?.acknowledged;
    const acknowledged = known ? { ...known } : undefined;
    let handle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      // A missing file reads as empty; for a stream with acknowledged records, checkHead reports them missing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { trailingBytes: 0, acknowledged };
      throw new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
    }
    try {
      const size = acknowledged ? acknowledged.size : (await handle.stat()).size;
      const scan = await scanLines(handle, size, onLine);
      return { trailingBytes: scan.trailingBytes, acknowledged };
    } catch (err) {
      throw new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
    } finally {
      await handle.close();
    }
  }

  return {
    append(tenant, event) {
      if (closing) return Promise.reject(new BrokerError('audit_unavailable', 'audit log is closed'));
      let stream: Stream;
      try {
        stream = streamFor(tenant);
      } catch (err) {
        return Promise.reject(err);
      }
      return new Promise<AuditRecord>((resolve, reject) => {
        // Copied now: a caller mutating its object after append must not change what is recorded.
        stream.queue.push({ event: { ...event }, ts: new Date(clock.now()).toISOString(), resolve, reject });
        schedule();
      });
    },

    async read(tenant, { afterSeq = 0, limit = Number.POSITIVE_INFINITY } = {}) {
      const out: AuditRecord[] = [];
      if (limit <= 0) return out;
      await scanTenant(tenant, (line) => {
        let record: AuditRecord;
        try {
          record = JSON.parse(line) as AuditRecord;
        } catch {
          return true; // verify() reports it; a reader still sees the rest.
        }
        // Never hand out a line that names another tenant, even if one was copied into this file.
        if (record?.tenant === tenant && typeof record.seq === 'number' && record.seq > afterSeq) out.push(record);
        return out.length < limit;
      });
      return out;
    },

    async verify(tenant, options = {}): Promise<AuditVerifyResult> {
      const verifier = createChainVerifier(tenant, options.pins);
      const scan = await scanTenant(tenant, (line) => verifier.nextLine(line));
      let result = verifier.result();
      if (result.ok && scan.trailingBytes > 0) {
        // Inside what this process acknowledged every line is complete, so a partial one there is an edit.
        const problem = scan.acknowledged
          ? 'a line crosses the acknowledged end of the log (log was rewritten)'
          : 'torn final line (an interrupted write; the next append cuts it)';
        result = { ...result, ok: false, broken: { seq: result.events + 1, problem } };
      }
      return scan.acknowledged ? checkHead(result, scan.acknowledged) : result;
    },

    tenants: () => tenantFiles(dir),

    async ready() {
      return !closing;
    },

    async close() {
      closing = true;
      if (timer) {
        timer.cancel();
        timer = undefined;
      }
      if (running) await running;
      await drain();
      await Promise.all(
        [...streams.values()].map(async (s) => {
          const file = s.open;
          s.open = undefined;
          await file?.handle.close();
        }),
      );
    },

    warnings: () => [...warnings],
    stats: () => ({ ...counters }),
  };
}
