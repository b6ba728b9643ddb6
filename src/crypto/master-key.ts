import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open as openFile, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The master key wraps everything Bulkhead keeps at rest under --data-dir (signing keys, tenant data
 * keys). It is created once, 0600, and never logged. `BULKHEAD_MASTER_KEY` (base64, 32 bytes) can
 * supply it instead, so the key need not sit beside the data it protects.
 */
export const MASTER_KEY_FILE = 'master.key';

export async function loadOrCreateMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  const fromEnv = env.BULKHEAD_MASTER_KEY;
  if (fromEnv) {
    const key = Buffer.from(fromEnv, 'base64');
    if (key.length !== 32) throw new Error('BULKHEAD_MASTER_KEY must be 32 bytes, base64-encoded');
    return key;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, MASTER_KEY_FILE);
  try {
    const key = Buffer.from((await readFile(path, 'utf8')).trim(), 'base64');
    if (key.length !== 32) throw new Error(`${path}: master key must be 32 bytes, base64-encoded`);
    const mode = (await stat(path)).mode & 0o777;
    if (mode & 0o077) await chmod(path, 0o600);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(32);
  // 'wx' fails if another process created it first; then we read theirs rather than overwrite it.
  try {
    const handle = await openFile(path, 'wx', 0o600);
    await handle.writeFile(key.toString('base64') + '\n');
    await handle.sync();
    await handle.close();
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateMasterKey(dataDir, env);
    throw err;
  }
}

/**
 * The master key for a verb that only reads (`audit verify`, `audit export`): never creates one, since
 * a new key would open nothing and would leave a stray master.key in someone's data dir.
 */
export async function loadExistingMasterKey(dataDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  if (!env.BULKHEAD_MASTER_KEY) {
    try {
      await stat(join(dataDir, MASTER_KEY_FILE));
    } catch {
      throw new Error(`no master key: ${join(dataDir, MASTER_KEY_FILE)} does not exist and BULKHEAD_MASTER_KEY is not set`);
    }
  }
  return loadOrCreateMasterKey(dataDir, env);
}
