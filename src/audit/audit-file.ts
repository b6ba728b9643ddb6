import { createHash } from 'node:crypto';
import { constants, fstatSync, lstatSync, type Stats } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BrokerError } from '../errors';
import { isStreamId } from './security-stream';
import type { AuditKeySet } from './audit-keys';
import type { AuditVerifyOptions, AuditVerifyResult } from './audit-log';
import { createChainVerifier, type ChainHead } from './chain';
import { looksLikeSeal, sealProblem } from './seal';

/**
 * One tenant's JSONL audit file: finding it, opening it, proving it is intact before anything is
 * appended to it, and cutting away what an interrupted write left behind. The group-commit engine in
 * file-audit-log.ts decides when to write; this file decides whether the file may be written at all.
 */

export interface OpenStream {
  handle: FileHandle;
  dev: number;
  ino: number;
  /** Last durable record. */
  head: ChainHead;
  /** Bytes of durable, complete lines: the file must be exactly this long before the next batch. */
  size: number;
}

/**
 * The stream's stored chain does not verify, or the file is not the one this log wrote: appending
 * would extend evidence nobody can trust, so the writer refuses this tenant (and only this tenant)
 * until an operator seals it. Any other error is the writer's own (disk full, I/O error).
 */
export class AuditIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditIntegrityError';
  }
}

/** The acknowledged state a reopen must find again. */
export type Acknowledged = ChainHead & {
  size: number;
  /** The bytes of the last batch whose write began but was never acknowledged. */
  attempted?: Buffer;
};

/** Tenant ids are policy IDs; the extra checks keep a bad id from ever naming a path outside `dir`. */
export function tenantFilePath(dir: string, tenant: string): string {
  if (!isStreamId(tenant) || tenant.includes('/') || tenant.includes('..') || tenant.includes('\0')) {
    throw new BrokerError('bad_request', 'invalid tenant id');
  }
  return join(dir, `${tenant}.jsonl`);
}

/** The tenants that have a `<tenant>.jsonl` in `dir` (streams, or their checkpoints), sorted. */
export async function tenantFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith('.jsonl'))
    .map((n) => n.slice(0, -'.jsonl'.length))
    .filter((t) => isStreamId(t) && !t.includes('..'))
    .sort();
}

export interface ChainScan {
  result: AuditVerifyResult;
  /** The last record that verified. */
  head: ChainHead;
  completeBytes: number;
  trailingBytes: number;
  /** The highest seq any line claims, verified or not (a seal starts past it). */
  maxSeq: number;
  /** A line shaped like a seal was seen (scanned without keys, it could not be accepted). */
  sawSeal: boolean;
}

/**
 * Verifies a stream's lines in order, accepting a seal (seal.ts) where the chain breaks: a signed seal
 * that covers exactly the bytes before it acknowledges the break and starts a new segment. Without
 * `keys` no seal is accepted. The scan goes on past a break, to find a seal further on.
 */
export async function scanChain(handle: FileHandle, maxBytes: number, tenant: string, options: AuditVerifyOptions = {}): Promise<ChainScan> {
  const verifier = createChainVerifier(tenant, options.pins);
  const running = createHash('sha256');
  let broken: { seq: number; problem: string } | undefined;
  let lastGood: ChainHead = verifier.head();
  let maxSeq = 0;
  let sawSeal = false;
  let start = 0;
  const scan = await scanLines(handle, maxBytes, (line, end, raw) => {
    const regionBytes = start;
    start = end;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    const seq = (parsed as { seq?: unknown } | undefined)?.seq;
    if (Number.isSafeInteger(seq)) maxSeq = Math.max(maxSeq, seq as number);
    if (looksLikeSeal(parsed)) sawSeal = true;
    const seal = options.keys && looksLikeSeal(parsed) ? parsed : undefined;
    // The region's hash is only needed where a seal might start it.
    const regionSha = seal ? running.copy().digest('hex') : '';
    running.update(raw);
    // A break first seen at the seal line itself is not visible in the stream: only the seal says what it was.
    let found = 'nothing before the seal: the stream verifies up to it';
    if (!broken) {
      if (parsed === undefined ? verifier.nextLine(line) : verifier.next(parsed)) return true;
      broken = verifier.result().broken;
      lastGood = verifier.head();
    } else {
      found = `seq ${broken.seq}: ${broken.problem}`;
    }
    if (seal && sealProblem(seal, tenant, options.keys!, { bytes: regionBytes, sha256: regionSha }, lastGood) === null) {
      verifier.resume(
        { seal_seq: seal.seq, verified_seq: seal.seal.verified_seq, break_seq: seal.seal.break_seq, found, recorded: seal.seal.found, operator: seal.operator, reason: seal.detail, ts: seal.ts },
        { seq: seal.seq, hash: seal.hash },
        seal.prev_hash,
      );
      broken = verifier.result().broken;
      if (broken) lastGood = verifier.head();
    }
    return true;
  });
  return { result: verifier.result(), head: verifier.head(), completeBytes: scan.completeBytes, trailingBytes: scan.trailingBytes, maxSeq, sawSeal };
}

/** The audit keys, fetched only when a stream holds a seal to check (most never do). */
export type SealKeys = () => Promise<AuditKeySet>;

async function scanWithSeals(handle: FileHandle, maxBytes: number, tenant: string, keys?: SealKeys): Promise<ChainScan> {
  const plain = await scanChain(handle, maxBytes, tenant);
  if (!plain.result.broken || !plain.sawSeal || !keys) return plain;
  return scanChain(handle, maxBytes, tenant, { keys: await keys() });
}

/** SHA-256 (hex) of a file's first `size` bytes, then `suffix`. */
export async function hashPrefix(handle: FileHandle, size: number, suffix: Buffer = Buffer.alloc(0)): Promise<string> {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(CHUNK);
  for (let position = 0; position < size; ) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(CHUNK, size - position), position);
    if (bytesRead === 0) break;
    hash.update(chunk.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.update(suffix).digest('hex');
}

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Calls `onLine` for each newline-terminated line in the first `maxBytes` bytes, with the byte offset
 * just after it and its raw bytes (newline included); stops early when `onLine` returns false. Bytes after the last newline are reported, not
 * passed on: a line only exists once its newline is written.
 */
export async function scanLines(
  handle: FileHandle,
  maxBytes: number,
  onLine: (line: string, end: number, raw: Buffer) => boolean,
): Promise<{ completeBytes: number; trailingBytes: number }> {
  let pending = Buffer.alloc(0);
  let position = 0;
  let completeBytes = 0;
  const chunk = Buffer.alloc(CHUNK);
  while (position < maxBytes) {
    const { bytesRead } = await handle.read(chunk, 0, Math.min(CHUNK, maxBytes - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    pending = pending.length === 0 ? Buffer.from(chunk.subarray(0, bytesRead)) : Buffer.concat([pending, chunk.subarray(0, bytesRead)]);
    let start = 0;
    for (let nl = pending.indexOf(NEWLINE, start); nl !== -1; nl = pending.indexOf(NEWLINE, start)) {
      completeBytes += nl + 1 - start;
      if (!onLine(pending.toString('utf8', start, nl), completeBytes, pending.subarray(start, nl + 1))) return { completeBytes, trailingBytes: 0 };
      start = nl + 1;
    }
    pending = pending.subarray(start);
  }
  return { completeBytes, trailingBytes: pending.length };
}

/**
 * Opens a tenant's file for appending after proving the chain in it verifies end to end. A torn final
 * line (an interrupted write) is truncated away with a warning.
 *
 * When reopening after a failed batch, `acknowledged` is what this process last confirmed as durable:
 * the file must still hold exactly that chain. Bytes after it are cut only if they are a prefix of the
 * batch this process itself failed to write (written, perhaps in part, but never acknowledged), so
 * nothing a caller was told failed ever counts. Anything else there was written by someone else: the
 * tenant is refused and the evidence left in place.
 */
export async function openStream(
  path: string,
  tenant: string,
  warnings: string[],
  acknowledged?: Acknowledged,
  keys?: SealKeys,
): Promise<OpenStream> {
  // A file we have written to must still exist: recreating it would silently restart the chain.
  const mayCreate = acknowledged === undefined || acknowledged.seq === 0;
  let exists = true;
  try {
    // lstat first: a FIFO, a device or a symlink in the file's place is refused, never opened.
    if (!(await lstat(path)).isFile()) throw new AuditIntegrityError(`${path} is not a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (!mayCreate) throw new AuditIntegrityError(`${path} is missing: records through seq ${acknowledged!.seq} were written to it`);
    exists = false;
  }
  // O_DSYNC: a write returns once its bytes (and the size that makes them readable) are on stable
  // storage, so a batch costs one write instead of a write and an fdatasync (two thread-pool hops).
  const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_DSYNC | (mayCreate ? constants.O_CREAT : 0);
  const handle = await open(path, flags, 0o600);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new AuditIntegrityError(`${path} is not a regular file`);
    if (!exists) await syncDirectory(dirname(path));
    const { head, size } = acknowledged
      ? await checkReopen(handle, stat.size, path, tenant, warnings, acknowledged, keys)
      : await checkFirstOpen(handle, stat.size, path, tenant, warnings, keys);
    if (size < stat.size) {
      await handle.truncate(size);
      await handle.datasync();
    }
    return { handle, dev: stat.dev, ino: stat.ino, head, size };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}

type Checked = { head: ChainHead; size: number };

const brokenMessage = (path: string, broken: { seq: number; problem: string }) => `${path}: audit chain is broken at seq ${broken.seq} (${broken.problem}); refusing to append`;

async function checkFirstOpen(handle: FileHandle, fileSize: number, path: string, tenant: string, warnings: string[], keys?: SealKeys): Promise<Checked> {
  const scan = await scanWithSeals(handle, fileSize, tenant, keys);
  const { broken } = scan.result;
  if (broken) throw new AuditIntegrityError(brokenMessage(path, broken));
  if (scan.trailingBytes > 0) {
    warnings.push(`${path}: removed a torn final line (${scan.trailingBytes} bytes) left by an interrupted write`);
  }
  return { head: scan.head, size: scan.completeBytes };
}

async function checkReopen(
  handle: FileHandle,
  fileSize: number,
  path: string,
  tenant: string,
  warnings: string[],
  acknowledged: Acknowledged,
  keys?: SealKeys,
): Promise<Checked> {
  const scan = await scanWithSeals(handle, acknowledged.size, tenant, keys);
  const { broken } = scan.result;
  if (broken) throw new AuditIntegrityError(brokenMessage(path, broken));
  const head = scan.head;
  if (head.seq < acknowledged.seq && scan.trailingBytes === 0) throw new AuditIntegrityError(`${path}: records after seq ${head.seq} are missing`);
  if (scan.trailingBytes > 0 || head.seq !== acknowledged.seq || head.hash !== acknowledged.hash) {
    throw new AuditIntegrityError(`${path}: audit file was rewritten`);
  }
  const extra = fileSize - acknowledged.size;
  if (extra > 0) {
    const attempted = acknowledged.attempted;
    const tail = Buffer.alloc(Math.min(extra, attempted?.length ?? 0));
    if (tail.length > 0) await handle.read(tail, 0, tail.length, acknowledged.size);
    if (!attempted || extra > attempted.length || !tail.equals(attempted.subarray(0, extra))) {
      throw new AuditIntegrityError(`${path}: holds ${extra} bytes after the acknowledged head that this log did not write; refusing to append`);
    }
    warnings.push(`${path}: removed ${extra} bytes of a batch that failed and was never acknowledged`);
  }
  return { head, size: acknowledged.size };
}

/**
 * Before each batch: the path must still name the file we hold open, at the length we left it. If the
 * file was removed or replaced, writing to our descriptor would "succeed" into an orphaned inode and
 * every record would be lost; if it grew, someone else appended to it. Either way, refuse.
 *
 * Synchronous on purpose: two stat calls on a local file take microseconds, far less than the two
 * thread-pool round trips their asynchronous forms cost on every batch.
 */
export function assertInPlace(path: string, stream: OpenStream): void {
  let onDisk: Stats;
  try {
    onDisk = lstatSync(path);
  } catch (err) {
    // The file gone from a directory that is still there is this stream's problem, not the disk's.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && lstatSync(dirname(path), { throwIfNoEntry: false })?.isDirectory()) throw new AuditIntegrityError(`${path} was removed`);
    throw err;
  }
  if (onDisk.ino !== stream.ino || onDisk.dev !== stream.dev) throw new AuditIntegrityError(`${path} was replaced`);
  if (fstatSync(stream.handle.fd).size !== stream.size) throw new AuditIntegrityError(`${path} changed outside the audit log`);
}

/**
 * Writes the whole buffer; a short write is retried, and an error leaves a torn tail for the next open
 * to cut. On a descriptor opened with O_DSYNC (openStream) the bytes are durable when this resolves.
 */
export async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await handle.write(data, offset, data.length - offset, null);
    if (bytesWritten === 0) throw new Error('write made no progress');
    offset += bytesWritten;
  }
}

/** A new file's directory entry is only durable once the directory itself is synced. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
