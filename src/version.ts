import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/**
 * This package's version, from its package.json: the nearest one up from this file that is Bulkhead's,
 * so it is the same from src/ (tests) and dist/src/ (the built CLI and broker).
 */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'bulkhead' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // No package.json here: keep walking up.
    }
    if (dirname(dir) === dir) return (cached = '0.0.0-unknown');
  }
}
