import { statSync, type BigIntStats } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * Reads small files that are read far more often than they change (the local store's sealed secrets
 * and sealed data keys are read on every tool call). Each read still asks the file system whether the
 * file is the same one: a `stat` (one system call) instead of open + fstat + read + close, and the bytes
 * are re-read whenever the file's identity changed. So every read sees the file as it is on disk now:
 * a write by this or another process (the CLI), a delete, or a shred is seen by the next read, exactly
 * as with a plain readFile.
 *
 * Identity is (device, inode, size, mtime, ctime) in nanoseconds: writers here replace files by rename
 * (a new inode), and any in-place change moves ctime, which user space cannot set back. Only file
 * contents are kept (for the local store these are sealed ciphertexts), never anything decrypted.
 *
 * The stat is synchronous: on a local file it takes a few microseconds, while its asynchronous form
 * costs a thread-pool round trip on every tool call. Only a changed file is read asynchronously.
 */
export interface CachedFileReader {
  /** The file's text, or undefined when it does not exist. */
  read(path: string): Promise<string | undefined>;
}

interface Entry {
  identity: BigIntStats;
  text: string;
}

const sameFile = (a: BigIntStats, b: BigIntStats) => a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;

export function createCachedFileReader(options: { maxEntries?: number } = {}): CachedFileReader {
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, Entry>();

  return {
    async read(path) {
      let identity: BigIntStats | undefined;
      try {
        identity = statSync(path, { bigint: true, throwIfNoEntry: false });
      } catch (err) {
        entries.delete(path);
        throw err;
      }
      if (identity === undefined) {
        entries.delete(path);
        return undefined;
      }
      const hit = entries.get(path);
      if (hit && sameFile(hit.identity, identity)) return hit.text;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        entries.delete(path);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      // If the file changed between the stat and the read, the next stat differs and it is read again.
      entries.delete(path);
      entries.set(path, { identity, text });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value as string);
      return text;
    },
  };
}
