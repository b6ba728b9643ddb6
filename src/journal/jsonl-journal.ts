import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * An append-only JSON-lines file for embedded state that must survive a restart (revocations,
 * quarantines). `append` resolves only after the line is fsynced; concurrent appends share one write and
 * one fsync (group commit). Once a write fails the journal refuses further appends, because a partial
 * line may sit at its end: callers fail closed instead of writing after garbage.
 */
export interface JsonlJournal {
  append(entry: unknown): Promise<void>;
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
  if (existing !== null && complete.length !== existing.length) {
    await handle.truncate(Buffer.byteLength(complete, 'utf8'));
    await handle.sync();
  }
  if (existing === null) await syncDirectory(dirname(path));
  return { entries, journal: createJournal(handle, path) };
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

function createJournal(handle: FileHandle, path: string): JsonlJournal {
  type Waiter = { line: string; resolve: () => void; reject: (err: unknown) => void };
  let pending: Waiter[] = [];
  let flushing: Promise<void> | null = null;
  let broken: unknown = null;
  let closed = false;

  async function flush(): Promise<void> {
    // Yield once so every append made in this tick joins the same write and fsync.
    await undefined;
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      if (broken !== null) {
        for (const w of batch) w.reject(broken);
        continue;
      }
      try {
        await handle.appendFile(batch.map((w) => w.line).join(''), 'utf8');
        await handle.datasync();
        for (const w of batch) w.resolve();
      } catch (err) {
        broken = new Error(`${path}: journal write failed; later writes are refused`, { cause: err });
        for (const w of batch) w.reject(broken);
      }
    }
    flushing = null;
  }

  return {
    append(entry) {
      if (closed) return Promise.reject(new Error(`${path}: journal is closed`));
      if (broken !== null) return Promise.reject(broken);
      const line = JSON.stringify(entry) + '\n';
      return new Promise<void>((resolve, reject) => {
        pending.push({ line, resolve, reject });
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
