import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Files that are either wholly old or wholly new, never half-written, so a crash at any point leaves
 * something the next start can read. Content is written to a private temp file and fsynced, then:
 * - `replaceFile` renames it over the target (last writer wins: renewals);
 * - `createFileOnce` hard-links it to the target, which fails if the target exists, so when two
 *   processes race to create the same thing (a CA), exactly one wins and the other reads the winner's.
 */

async function writeTemp(path: string, content: string, mode: number): Promise<string> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temp, 'wx', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await handle.close();
  return temp;
}

/** fsyncs a directory so a rename or unlink in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r').catch(() => undefined);
  // Some platforms cannot fsync a directory; the rename or link is still atomic there.
  await handle?.sync().catch(() => undefined);
  await handle?.close();
}

export async function replaceFile(path: string, content: string, mode = 0o600): Promise<void> {
  const temp = await writeTemp(path, content, mode);
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await syncDir(dirname(path));
}

/** True if this call created the file, false if it already existed (its content is left as it was). */
export async function createFileOnce(path: string, content: string, mode = 0o600): Promise<boolean> {
  const temp = await writeTemp(path, content, mode);
  try {
    await link(temp, path);
    await syncDir(dirname(path));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

/** The file's text, or null if it does not exist. */
export async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
