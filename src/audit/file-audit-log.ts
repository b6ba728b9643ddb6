import { constants } from 'node:fs';
import { lstat, mkdir, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { getSystemErrorMessage } from 'node:util';
import type { Clock } from '../clock';
import { BrokerError, isBrokerError } from '../errors';
import { notReady, READY } from '../observability/readiness';
import { GENESIS_HASH, type AuditEvent, type AuditLog, type AuditRecord, type AuditVerifyResult, type LockedStream, type SealRequest } from './audit-log';
import { assertInPlace, AuditIntegrityError, hashPrefix, openStream, scanChain, scanLines, syncDirectory, tenantFilePath, tenantFiles, writeAll, type Acknowledged, type OpenStream, type SealKeys } from './audit-file';
import { buildSealRecord } from './seal';
import { buildRecord, checkHead, type ChainHead } from './chain';

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
  /** The audit keys a seal in a stream must be signed by (without them a sealed stream stays refused). */
  sealKeys?: SealKeys;
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
  /** Set while the stored chain does not verify: every batch is refused until it does, or is sealed. */
  locked?: LockedStream;
  /** The file as it was when it was refused: while it is unchanged, a batch is refused without re-reading it. */
  lockedFile?: string;
  /** Batches and seals of one stream take turns. */
  turn: Promise<unknown>;
}

/** The writer's own fault (not one tenant's): the disk is full, an I/O error, the directory is gone. */
interface WriterFault {
  problem: string;
  since: string;
  /** The failed batch's size: a probe must get at least this much onto the disk to count. */
  bytes: number;
}

/** Where a failed writer checks whether the disk takes writes again (not a `.jsonl`: never a stream). */
const PROBE_FILE = '.write-probe';
const MIN_PROBE_BYTES = 4096;

/** Which file is at `path` now, and how big and how recent: a change to any of them is worth a re-read. */
async function fileIdentity(path: string): Promise<string> {
  try {
    const s = await lstat(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
  } catch (err) {
    return `absent:${(err as NodeJS.ErrnoException).code}`;
  }
}

/** A fault as readiness states it: the errno and its meaning, never a path (it holds a tenant id). */
function faultProblem(err: unknown): string {
  const { code, errno } = err as NodeJS.ErrnoException;
  if (code === 'ENOENT') return 'audit write failed: the audit directory is missing';
  if (typeof code === 'string' && typeof errno === 'number') return `audit write failed: ${code} (${getSystemErrorMessage(errno)})`;
  return 'audit write failed';
}

export function createFileAuditLog(options: FileAuditLogOptions): FileAuditLog {
  const { dir, clock } = options;
  const groupCommitMs = options.groupCommitMs ?? 0;
  const maxBatch = options.maxBatch ?? 1000;
  const streams = new Map<string, Stream>();
  const warnings: string[] = [];
  const counters: AuditStats = { records: 0, batches: 0, failedBatches: 0 };
  let fault: WriterFault | undefined;
  let probing: Promise<void> | undefined;
  /** Once this log has made (or found) its directory, the directory going away is a fault, never recreated. */
  let dirMade = false;
  const relative = (message: string) => message.replaceAll(`${dir}/`, '');
  let timer: { cancel(): void } | undefined;
  let running: Promise<void> | undefined;
  let closing = false;

  function streamFor(tenant: string): Stream {
    let stream = streams.get(tenant);
    if (!stream) {
      // Checked once, when the stream is made: only ids that passed are ever keys of `streams`.
      stream = { tenant, path: tenantFilePath(dir, tenant), queue: [], turn: Promise.resolve() };
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
      await Promise.all(busy.map((stream) => inTurn(stream, () => flushStream(stream))));
    }
  }

  function inTurn<T>(stream: Stream, run: () => Promise<T>): Promise<T> {
    const next = stream.turn.then(run, run);
    stream.turn = next.catch(() => undefined);
    return next;
  }

  /** The directory is made once; after that a missing directory is the writer's fault (ENOENT), not remade. */
  async function ensureDir(): Promise<void> {
    if (!dirMade) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      dirMade = true;
      return;
    }
    if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error('the audit directory is not a directory'), { code: 'ENOTDIR', errno: -20 });
  }

  /** Opens (or reopens) a stream; an integrity refusal locks the tenant, anything else is thrown as it is. */
  async function openFor(stream: Stream): Promise<OpenStream> {
    await ensureDir();
    // A refused stream is re-verified only once its file changed: a busy tenant's calls do not each re-read it.
    if (stream.locked && stream.lockedFile === (await fileIdentity(stream.path))) throw new AuditIntegrityError(stream.locked.problem);
    const acknowledged = stream.acknowledged && { ...stream.acknowledged, attempted: stream.attempted };
    try {
      stream.open = await openStream(stream.path, stream.tenant, warnings, acknowledged, options.sealKeys);
    } catch (err) {
      if (err instanceof AuditIntegrityError) await lock(stream, err);
      throw err;
    }
    stream.locked = undefined;
    stream.lockedFile = undefined;
    stream.acknowledged = { ...stream.open.head, size: stream.open.size };
    stream.attempted = undefined;
    return stream.open;
  }

  async function lock(stream: Stream, err: AuditIntegrityError): Promise<void> {
    // The problem is the latest finding; `since` is when the tenant was first refused.
    stream.locked = { problem: relative(err.message), since: stream.locked?.since ?? new Date(clock.now()).toISOString() };
    stream.lockedFile = await fileIdentity(stream.path);
  }

  async function flushStream(stream: Stream): Promise<void> {
    const batch = stream.queue.splice(0, maxBatch);
    if (batch.length === 0) return;
    let bytes = 0;
    try {
      const file = stream.open ?? (await openFor(stream));
      assertInPlace(stream.path, file);
      let head: ChainHead = file.head;
      const records = batch.map((p) => {
        const record = buildRecord(stream.tenant, head, p.ts, p.event);
        head = { seq: record.seq, hash: record.hash };
        return record;
      });
      const data = Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
      bytes = data.length;
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
      fault = undefined;
      batch.forEach((p, i) => p.resolve(records[i]));
    } catch (err) {
      counters.failedBatches += 1;
      const failed = stream.open;
      stream.open = undefined;
      if (failed) await failed.handle.close().catch(() => undefined);
      if (err instanceof AuditIntegrityError) await lock(stream, err);
      else fault = { problem: faultProblem(err), since: fault?.since ?? new Date(clock.now()).toISOString(), bytes: Math.max(bytes, fault?.bytes ?? 0) };
      const error = new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
      for (const p of batch) p.reject(error);
    }
  }

  /**
   * After a fault: writes (and fdatasyncs) at least as many bytes as the failed batch to a probe file
   * beside the streams, then removes it. Only a write that really reached the disk clears the fault.
   */
  async function probe(): Promise<void> {
    const current = fault;
    if (!current) return;
    const path = join(dir, PROBE_FILE);
    try {
      await ensureDir();
      const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      try {
        await writeAll(handle, Buffer.alloc(Math.max(current.bytes, MIN_PROBE_BYTES), 0x0a));
        await handle.datasync();
      } finally {
        await handle.close();
        await unlink(path).catch(() => undefined);
      }
      if (fault === current) fault = undefined;
    } catch (err) {
      if (fault === current) fault = { ...current, problem: faultProblem(err) };
    }
  }

  /** Seals a locked stream (seal.ts): appends a signed seal record after whatever the file holds. */
  async function sealStream(stream: Stream, request: SealRequest): Promise<AuditRecord> {
    try {
      return await writeSeal(stream, request);
    } catch (err) {
      if (isBrokerError(err)) throw err;
      throw new BrokerError('audit_unavailable', 'audit log is unavailable: the seal was not written', { cause: err });
    }
  }

  async function writeSeal(stream: Stream, request: SealRequest): Promise<AuditRecord> {
    // Re-verified from the file, even if it is open: an edit in place is only seen by reading it again.
    const current = stream.open;
    stream.open = undefined;
    await current?.handle.close();
    try {
      await openFor(stream);
    } catch (err) {
      if (!(err instanceof AuditIntegrityError)) throw err;
    }
    if (!stream.locked) throw new BrokerError('conflict', 'the audit stream verifies: there is no break to seal');
    const recorded = stream.locked.problem;
    const onDisk = await lstat(stream.path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (onDisk && !onDisk.isFile()) throw new BrokerError('conflict', 'the audit stream is not a regular file (something else is in its place); move it away, then seal');
    const handle = await open(stream.path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const { size } = await handle.stat();
      const scan = await scanChain(handle, size, stream.tenant, { keys: await requireSealKeys() });
      // A torn last line is kept as it is, inside the region: the seal goes on a line of its own.
      const lastByte = Buffer.alloc(1);
      if (size > 0) await handle.read(lastByte, 0, 1, size - 1);
      const separator = size > 0 && lastByte[0] !== 0x0a ? Buffer.from('\n') : Buffer.alloc(0);
      const regionSha = await hashPrefix(handle, size, separator);
      const seq = Math.max(scan.maxSeq, stream.acknowledged?.seq ?? 0, request.signedThrough) + 1;
      const record = buildSealRecord(
        {
          tenant: stream.tenant,
          seq,
          ts: new Date(clock.now()).toISOString(),
          region: { bytes: size + separator.length, sha256: regionSha },
          verified: scan.head,
          breakSeq: scan.result.broken?.seq ?? scan.head.seq + 1,
          found: scan.result.broken ? `seq ${scan.result.broken.seq}: ${scan.result.broken.problem}` : recorded,
          operator: request.operator,
          reason: request.reason,
          requestId: request.requestId,
        },
        request.signer,
      );
      const data = Buffer.concat([separator, Buffer.from(JSON.stringify(record) + '\n', 'utf8')]);
      await writeAll(handle, data);
      await handle.datasync();
      if (!onDisk) await syncDirectory(dir);
      // Acknowledged like any batch; the next append reopens the file, and must accept the seal to go on.
      stream.acknowledged = { seq: record.seq, hash: record.hash, size: size + data.length };
      stream.attempted = undefined;
      stream.locked = undefined;
      stream.lockedFile = undefined;
      return record;
    } finally {
      await handle.close();
    }
  }

  async function requireSealKeys() {
    if (!options.sealKeys) throw new BrokerError('conflict', 'this audit log has no audit keys to check a seal with');
    return options.sealKeys();
  }

  /** Reads one tenant's file; for a stream this process writes, only what it acknowledged. */
  async function withTenantFile<T>(tenant: string, read: (handle: FileHandle, size: number) => Promise<T>, empty: () => T): Promise<{ value: T; acknowledged?: Acknowledged }> {
    const path = tenantFilePath(dir, tenant);
    // Snapshot before reading: bytes up to this size are complete and never rewritten.
    const known = streams.get(tenant)?.acknowledged;
    const acknowledged = known ? { ...known } : undefined;
    let handle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      // A missing file reads as empty; for a stream with acknowledged records, checkHead reports them missing.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { value: empty(), acknowledged };
      throw new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
    }
    try {
      const size = acknowledged ? acknowledged.size : (await handle.stat()).size;
      return { value: await read(handle, size), acknowledged };
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
      await withTenantFile(
        tenant,
        (handle, size) =>
          scanLines(handle, size, (line) => {
            let record: AuditRecord;
            try {
              record = JSON.parse(line) as AuditRecord;
            } catch {
              return true; // verify() reports it; a reader still sees the rest.
            }
            // Never hand out a line that names another tenant, even if one was copied into this file.
            if (record?.tenant === tenant && typeof record.seq === 'number' && record.seq > afterSeq) out.push(record);
            return out.length < limit;
          }),
        () => undefined,
      );
      return out;
    },

    async verify(tenant, options = {}): Promise<AuditVerifyResult> {
      const { value: scan, acknowledged } = await withTenantFile(
        tenant,
        (handle, size) => scanChain(handle, size, tenant, options),
        () => undefined,
      );
      let result: AuditVerifyResult = scan?.result ?? { ok: true, events: 0, head: GENESIS_HASH };
      if (result.ok && scan && scan.trailingBytes > 0) {
        // Inside what this process acknowledged every line is complete, so a partial one there is an edit.
        const problem = acknowledged
          ? 'a line crosses the acknowledged end of the log (log was rewritten)'
          : 'torn final line (an interrupted write; the next append cuts it)';
        result = { ...result, ok: false, broken: { seq: result.events + 1, problem } };
      }
      return acknowledged ? checkHead(result, acknowledged) : result;
    },

    tenants: () => tenantFiles(dir),

    async ready() {
      if (closing) return notReady('audit log is closed');
      // Nothing failed: the directory must still be there (a log that never wrote may not have made it yet).
      if (!fault && dirMade) await ensureDir().catch((err) => (fault = { problem: faultProblem(err), since: new Date(clock.now()).toISOString(), bytes: 0 }));
      if (fault) await (probing ??= probe().finally(() => (probing = undefined)));
      return fault ? notReady(fault.problem) : READY;
    },

    locked() {
      const out = new Map<string, LockedStream>();
      for (const stream of streams.values()) if (stream.locked) out.set(stream.tenant, { ...stream.locked });
      return out;
    },

    async seal(tenant, request) {
      if (closing) throw new BrokerError('audit_unavailable', 'audit log is closed');
      const stream = streamFor(tenant);
      return inTurn(stream, () => sealStream(stream, request));
    },

    async purge(tenant) {
      if (closing) throw new BrokerError('audit_unavailable', 'audit log is closed');
      const stream = streamFor(tenant);
      await inTurn(stream, async () => {
        const file = stream.open;
        stream.open = undefined;
        await file?.handle.close();
        // Forgotten with the file: the next record starts a new stream, not a "log was removed" lock.
        stream.acknowledged = undefined;
        stream.attempted = undefined;
        stream.locked = undefined;
        stream.lockedFile = undefined;
        try {
          await unlink(stream.path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BrokerError('audit_unavailable', 'audit log is unavailable', { cause: err });
        }
        await syncDirectory(dir).catch(() => undefined);
      });
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
