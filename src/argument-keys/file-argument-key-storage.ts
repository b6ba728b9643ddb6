import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { idSchema } from '../policy/schema';
import { createFileOnce, replaceFile } from '../storage/atomic-file';
import { parseStoredArgumentKey, type ArgumentKeyStorage, type StoredArgumentKey } from './argument-key-storage';

/**
 * The embedded argument keys: `<dataDir>/argument-keys/<tenant>.json` (0600 in a 0700 directory), one
 * JSON object `{kek, wrapped}`, or `{shredded_at}` once the tenant was shredded. Files are replaced
 * atomically; the first key is created with a link that fails if the file exists, so a CLI shred and a
 * broker creating the key cannot both win.
 */
export const ARGUMENT_KEYS_DIR = 'argument-keys';

export function createFileArgumentKeyStorage(dataDir: string): ArgumentKeyStorage {
  const dir = join(dataDir, ARGUMENT_KEYS_DIR);
  const pathOf = (tenant: string) => {
    // A tenant id is a policy id; the extra checks keep it from ever naming another path.
    if (!idSchema.safeParse(tenant).success || tenant.includes('/') || tenant.includes('..')) throw new Error('invalid tenant');
    return join(dir, `${tenant}.json`);
  };

  async function read(tenant: string): Promise<StoredArgumentKey | undefined> {
    const path = pathOf(tenant);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseStoredArgumentKey(JSON.parse(text), path);
  }

  return {
    read,
    async create(tenant, key) {
      await createFileOnce(pathOf(tenant), JSON.stringify(key) + '\n');
      const stored = await read(tenant);
      if (!stored) throw new Error(`${pathOf(tenant)} disappeared while it was created`);
      return stored;
    },
    async rewrap(tenant, from, to) {
      const stored = await read(tenant);
      if (!stored || !('wrapped' in stored) || stored.wrapped !== from.wrapped) return;
      await replaceFile(pathOf(tenant), JSON.stringify(to) + '\n');
    },
    async shred(tenant, at) {
      await replaceFile(pathOf(tenant), JSON.stringify({ shredded_at: at.toISOString() }) + '\n');
    },
  };
}
