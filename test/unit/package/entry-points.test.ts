import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../../support/built-cli';

/**
 * What package.json promises a consumer: `main` and every `exports` entry name a file the build makes,
 * and each loads in a fresh Node process through the package's own name (`require('bulkhead')`).
 */
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; main: string; exports: Record<string, string> };

beforeAll(() => ensureBuilt());

test('main and every export point at a file of the build', () => {
  expect(existsSync(join(ROOT, pkg.main))).toBe(true);
  for (const [entry, target] of Object.entries(pkg.exports)) expect({ entry, exists: existsSync(join(ROOT, target)) }).toEqual({ entry, exists: true });
});

test.each(Object.keys(pkg.exports).filter((e) => e !== './package.json'))('require("bulkhead%s") loads', (entry) => {
  const specifier = entry === '.' ? pkg.name : `${pkg.name}${entry.slice(1)}`;
  // Self-reference through "exports" resolves the package's own name from inside it, as a consumer's require would.
  const result = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(specifier)}); if (!Object.keys(m).length) process.exit(3);`], { cwd: ROOT, encoding: 'utf8' });
  expect({ specifier, status: result.status, stderr: result.stderr.split('\n')[0] }).toEqual({ specifier, status: 0, stderr: '' });
});

test('require("bulkhead") gives the composition root', () => {
  const result = spawnSync(process.execPath, ['-e', 'const b = require("bulkhead"); process.stdout.write(typeof b.createBroker + " " + typeof b.loadPolicyFile)'], { cwd: ROOT, encoding: 'utf8' });
  expect(result.stdout).toBe('function function');
});
