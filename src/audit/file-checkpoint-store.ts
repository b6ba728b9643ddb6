import { constants } from 'node:fs';
import { mkdir, open, unlink } from 'node:fs/promises';
import { readOptional } from '../storage/atomic-file';
import { syncDirectory, tenantFilePath, tenantFiles } from './audit-file';
import type { CheckpointStore } from './checkpoint-store';

/**
 * The embedded checkpoint store: `<dataDir>/audit-checkpoints/<tenant>.jsonl`, one signed checkpoint a
 * line, appended and fsynced. A sibling of the `audit/` directory, not inside it: deleting or
 * replacing a stream leaves its checkpoints behind to say so.
 */
export const CHECKPOINT_DIR = 'audit-checkpoints';

export function createFileCheckpointStore(dir: string): CheckpointStore {
  // One append at a time per tenant, so two lines never interleave.
  const tails = new Map<string, Promise<unknown>>();

  async function append(path: string, line: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const handle = await open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const created = (await handle.stat()).size === 0;
      await handle.write(line);
      await handle.datasync();
      if (created) await syncDirectory(dir);
    } finally {
      await handle.close();
    }
  }

  return {
    add(checkpoint) {
      const path = tenantFilePath(dir, checkpoint.tenant);
      const run = (tails.get(checkpoint.tenant) ?? Promise.resolve()).catch(() => undefined).then(() => append(path, JSON.stringify(checkpoint) + '\n'));
      tails.set(checkpoint.tenant, run);
      return run;
    },

    async list(tenant) {
      const text = await readOptional(tenantFilePath(dir, tenant));
      if (text === null) return [];
      // A line exists once its newline is written: a final line without one is an append in flight.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1);
      return complete
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => {
          try {
            return JSON.parse(line) as unknown;
          } catch {
            return { unparsable: true };
          }
        });
    },

    tenants: () => tenantFiles(dir),

    async purge(tenant) {
      const path = tenantFilePath(dir, tenant);
      // After any append in flight, so no line is written to a file already removed.
      const run = (tails.get(tenant) ?? Promise.resolve()).catch(() => undefined).then(async () => {
        try {
          await unlink(path);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
        await syncDirectory(dir).catch(() => undefined);
      });
      tails.set(tenant, run);
      await run;
    },
  };
}
