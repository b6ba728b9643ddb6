import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * An append-only JSON-lines file for embedded state that must survive a restart (revocations,
 * quarantines). `append` resolves only after the line is fsynced; concurrent appends share one write and
 * one fsync (group commit).
 *
 * A failed write (a full disk, an I/O error) fails that batch only. It may have left part of its bytes
 * at the end of the file, so the file is cut back to the last durable byte — at once, and again before
 * the next write if that did not work — and nothing is ever written after garbage. The journal therefore
 * works again as soon as the disk does, without a restart, and a line whose append was refused is not in
 * the file after a restart either (unless the process died between the failed write and the repair, in
 * which case the line is either torn, and cut when the file is opened, or whole and durable).
 */
export interface JsonlJournal {
  /**
   * Resolves once the line is durable. `onDurable` runs at that moment, before any later line's, so
   * state applied through it follows the file's order exactly (what a restart would replay).
   */
  append(entry: unknown, onDurable?: () => void): Promise<void>;
  close(): Promise<void>;
}

export interface OpenedJournal {
  /** Every complete line already in the file, parsed, in order. */
  entries: unknown[];
  journal: JsonlJournal;
}

export async function openJsonlJournal(path: string): Promise<OpenedJournal> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  let existing: string | null = null;
  try {
    existing = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  // A crash mid-append leaves a last line without its newline. That append never resolved, so nobody was
  // promised it; cut it off so the next line does not get glued onto it.
  const complete = existing === null ? '' : existing.slice(0, existing.lastIndexOf('\n') + 1);
  const entries = parseLines(path, complete);

  const handle = await open(path, 'a', 0o600);
  const durableBytes = Buffer.byteLength(complete, 'utf8');
  try {
    if (existing !== null && complete.length !== existing.length) {
      await handle.truncate(durableBytes);
      await handle.sync();
    }
    if (existing === null) await syncDirectory(dirname(path));
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { entries, journal: createJournal(handle, path, durableBytes) };
}

function parseLines(path: string, text: string): unknown[] {
  const entries: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    try {
      entries.push(JSON.parse(line));
    } catch {
      // A damaged line in the middle cannot be skipped safely (it may be a revocation): refuse to start.
      throw new Error(`${path}:${i + 1}: not valid JSON; refusing to load a damaged journal`);
    }
  }
  return entries;
}

function createJournal(handle: FileHandle, path: string, initialBytes: number): JsonlJournal {
  type Waiter = { line: string; onDurable?: () => void; resolve: () => void; reject: (err: unknown) => void };
  let pending: Waiter[] = [];
  let flushing: Promise<void> | null = null;
  let closed = false;
  /** Bytes of the file that are whole lines, fsynced: the only content the file may hold when a write starts. */
  let durableBytes = initialBytes;
  /** A write failed and its leftovers may still sit after `durableBytes`. */
  let dirty = false;

  async function repair(): Promise<void> {
    // Shrinking a file needs no free space, so this works on a full disk too.
    await handle.truncate(durableBytes);
    await handle.datasync();
    dirty = false;
  }

  async function writeBatch(batch: Waiter[]): Promise<void> {
    if (dirty) {
      try {
        await repair();
      } catch (err) {
        throw new Error(`${path}: journal could not be repaired after a failed write; nothing was written`, { cause: err });
      }
    }
    const data = batch.map((w) => w.line).join('');
    try {
      // Opened for appending (O_APPEND): the write lands at the end, which the repair made `durableBytes`.
      await handle.appendFile(data, 'utf8');
      await handle.datasync();
    } catch (err) {
      dirty = true;
      // Cut the failed batch off now, so a restart cannot find a line whose append was refused.
      await repair().catch(() => undefined);
      throw new Error(`${path}: journal write failed; nothing of this batch was stored`, { cause: err });
    }
    durableBytes += Buffer.byteLength(data, 'utf8');
  }

  async function flush(): Promise<void> {
    // Yield once so every append made in this tick joins the same write and fsync.
    await undefined;
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await writeBatch(batch);
      } catch (err) {
        for (const w of batch) w.reject(err);
        continue;
      }
      for (const w of batch) w.onDurable?.();
      for (const w of batch) w.resolve();
    }
    flushing = null;
  }

  return {
    append(entry, onDurable) {
      if (closed) return Promise.reject(new Error(`${path}: journal is closed`));
      const line = JSON.stringify(entry) + '\n';
      return new Promise<void>((resolve, reject) => {
        pending.push({ line, onDurable, resolve, reject });
        flushing ??= flush();
      });
    },
    async close() {
      closed = true;
      if (flushing) await flushing;
      await handle.close();
    },
  };
}

/** Makes a newly created file's directory entry durable too, so the file itself survives a crash. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
