import { resolve } from 'node:path';
import { loadPolicyFile, PolicyError } from '../policy/load';
import type { Policy } from '../policy/schema';
import { DEFAULT_DATA_DIR } from './options';
import { UsageError } from './usage-error';

/** Loads --config (policy errors become usage errors: exit 2, one line naming file and field). */
export function loadConfig(values: { config?: string; 'data-dir'?: string }): { policy: Policy | null; dataDir: string } {
  const dataDir = resolve(values['data-dir'] ?? process.env.BULKHEAD_DATA_DIR ?? DEFAULT_DATA_DIR);
  if (!values.config) return { policy: null, dataDir };
  try {
    return { policy: loadPolicyFile(values.config), dataDir };
  } catch (err) {
    if (err instanceof PolicyError) throw new UsageError(err.message);
    throw err;
  }
}
