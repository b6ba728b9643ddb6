import { constants, fstatSync, lstatSync } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BrokerError } from '../errors';
import { isStreamId } from './security-stream';
import { createChainVerifier, type ChainHead } from './chain';

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

const CHUNK = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Calls `onLine` for each newline-terminated line in the first `maxBytes` bytes, with the byte offset
 * just after it; stops early when `onLine` returns false. Bytes after the last newline are reported, not
 * passed on: a line only exists once its newline is written.
 */
export async function scanLines(
  handle: FileHandle,
  maxBytes: number,
  onLine: (line: string, end: number) => boolean,
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
      if (!onLine(pending.toString('utf8', start, nl), completeBytes)) return { completeBytes, trailingBytes: 0 };
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
): Promise<OpenStream> {
  // A file we have written to must still exist: recreating it would silently restart the chain.
  const mayCreate = acknowledged === undefined || acknowledged.seq === 0;
  let exists = true;
  try {
    // lstat first: a FIFO, a device or a symlink in the file's place is refused, never opened.
    if (!(await lstat(path)).isFile()) throw new Error(`${path} is not a regular file`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !mayCreate) throw err;
    exists = false;
  }
  // O_DSYNC: a write returns once its bytes (and the size that makes them readable) are on stable
  // storage, so a batch costs one write instead of a write and an fdatasync (two thread-pool hops).
  const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_DSYNC | (mayCreate ? constants.O_CREAT : 0);
  const handle = await open(path, flags, 0o600);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
    if (!exists) await syncDirectory(dirname(path));
    const { head, size } = acknowledged
      ? await checkReopen(handle, stat.size, path, tenant, warnings, acknowledged)
      : await checkFirstOpen(handle, stat.size, path, tenant, warnings);
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

async function checkFirstOpen(handle: FileHandle, fileSize: number, path: string, tenant: string, warnings: string[]): Promise<Checked> {
  const verifier = createChainVerifier(tenant);
  const scan = await scanLines(handle, fileSize, (line) => verifier.nextLine(line));
  const { broken } = verifier.result();
  if (broken) throw new Error(`${path}: audit chain is broken at seq ${broken.seq} (${broken.problem}); refusing to append`);
  if (scan.trailingBytes > 0) {
    warnings.push(`${path}: removed a torn final line (${scan.trailingBytes} bytes) left by an interrupted write`);
  }
  return { head: verifier.head(), size: scan.completeBytes };
}

async function checkReopen(
  handle: FileHandle,
  fileSize: number,
  path: string,
  tenant: string,
  warnings: string[],
  acknowledged: Acknowledged,
): Promise<Checked> {
  const verifier = createChainVerifier(tenant);
  const scan = await scanLines(handle, acknowledged.size, (line) => verifier.nextLine(line));
  const { broken } = verifier.result();
  if (broken) throw new Error(`${path}: audit chain is broken at seq ${broken.seq} (${broken.problem}); refusing to append`);
  const head = verifier.head();
  if (head.seq < acknowledged.seq && scan.trailingBytes === 0) throw new Error(`${path}: records after seq ${head.seq} are missing`);
  if (scan.trailingBytes > 0 || head.seq !== acknowledged.seq || head.hash !== acknowledged.hash) {
    throw new Error(`${path}: audit file was rewritten`);
  }
  const extra = fileSize - acknowledged.size;
  if (extra > 0) {
    const attempted = acknowledged.attempted;
    const tail = Buffer.alloc(Math.min(extra, attempted?.length ?? 0));
    if (tail.length > 0) await handle.read(tail, 0, tail.length, acknowledged.size);
    if (!attempted || extra > attempted.length || !tail.equals(attempted.subarray(0, extra))) {
      throw new Error(`${path}: holds ${extra} bytes after the acknowledged head that this log did not write; refusing to append`);
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
  const onDisk = lstatSync(path);
  if (onDisk.ino !== stream.ino || onDisk.dev !== stream.dev) throw new Error(`${path} was replaced or removed`);
  if (fstatSync(stream.handle.fd).size !== stream.size) throw new Error(`${path} changed outside the audit log`);
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
