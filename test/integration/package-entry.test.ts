import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureBuilt, ROOT } from '../support/built-cli';

/**
 * The package as a consumer gets it: `npm pack` of the built tree, unpacked into a fresh
 * node_modules/bulkhead, and every `exports` entry loaded from outside the repository, with require()
 * and with import(). A field pointing at a file the package does not ship fails here.
 */
const run = promisify(execFile);
const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string; bin: Record<string, string>; exports: Record<string, string>; dependencies: Record<string, string> };

describe('the packed package', () => {
  let dir: string;
  let installed: string;

  beforeAll(async () => {
    ensureBuilt();
    dir = await mkdtemp(join(tmpdir(), 'bulkhead-pack-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT });
    const [{ filename }] = JSON.parse(stdout) as Array<{ filename: string }>;
    await run('tar', ['-xzf', join(dir, filename), '-C', dir]);
    // The consumer's node_modules: the unpacked package beside its dependencies (linked, not downloaded).
    mkdirSync(join(dir, 'node_modules'));
    installed = join(dir, 'node_modules', 'bulkhead');
    renameSync(join(dir, 'package'), installed);
    for (const name of readdirSync(join(ROOT, 'node_modules'))) {
      if (name.startsWith('.')) continue;
      symlinkSync(join(ROOT, 'node_modules', name), join(dir, 'node_modules', name));
    }
  }, 180_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ships the files main, types, bin and every exports entry name', () => {
    for (const file of [manifest.main, manifest.types, ...Object.values(manifest.bin), ...Object.values(manifest.exports)]) {
      expect({ file, shipped: existsSync(join(installed, file)) }).toEqual({ file, shipped: true });
    }
    expect(`./${manifest.main}`).toBe(manifest.exports['.']);
    // Each JavaScript entry has its declarations beside it, so TypeScript consumers get types.
    for (const entry of Object.values(manifest.exports).filter((f) => f.endsWith('.js'))) expect(existsSync(join(installed, entry.replace(/\.js$/, '.d.ts')))).toBe(true);
  });

  it('loads every exports entry with require() and import() from outside the repository', async () => {
    const specifiers = Object.keys(manifest.exports).map((key) => (key === '.' ? 'bulkhead' : `bulkhead/${key.slice(2)}`));
    expect(specifiers).toEqual(expect.arrayContaining(['bulkhead', 'bulkhead/mcp', 'bulkhead/mcp/v2']));
    const script = `
      const specifiers = ${JSON.stringify(specifiers)};
      (async () => {
        const out = {};
        for (const s of specifiers) {
          const required = require(s);
          const imported = s.endsWith('.json') ? (await import(s, { with: { type: 'json' } })).default : await import(s);
          out[s] = { required: Object.keys(required).sort(), imported: Object.keys(imported).filter((k) => k !== 'default' && k !== 'module.exports').sort() };
        }
        process.stdout.write(JSON.stringify(out));
      })().catch((err) => { process.stderr.write(String(err.stack)); process.exit(1); });`;
    const { stdout } = await run(process.execPath, ['-e', script], { cwd: dir });
    const loaded = JSON.parse(stdout) as Record<string, { required: string[]; imported: string[] }>;
    expect(loaded.bulkhead!.required).toEqual(expect.arrayContaining(['createBroker', 'loadPolicyFile', 'parsePolicy', 'PolicyError', 'BrokerError', 'DENY_REASONS', 'brokerAddress']));
    expect(loaded['bulkhead/mcp']!.required).toEqual(expect.arrayContaining(['createBulkheadMcp', 'createBrokerClient', 'bulkheadCall', 'protect']));
    expect(loaded['bulkhead/mcp/v2']!.required).toEqual(expect.arrayContaining(['createBulkheadMcp', 'protect', 'bulkheadCall']));
    expect(loaded['bulkhead/package.json']!.required).toEqual(expect.arrayContaining(['name', 'version']));
    for (const s of specifiers.filter((x) => !x.endsWith('.json'))) expect(loaded[s]!.imported).toEqual(expect.arrayContaining(loaded[s]!.required));
  });

  it('runs the bin from the packed package', async () => {
    const { stdout } = await run(process.execPath, [join(installed, manifest.bin.bulkhead!), 'serve', '--help'], { cwd: dir });
    expect(stdout).toMatch(/^Usage: bulkhead serve/);
  });

  it('keeps tests, sources and local state out of the package', () => {
    expect(existsSync(join(installed, 'test'))).toBe(false);
    expect(existsSync(join(installed, 'src'))).toBe(false);
    expect(existsSync(join(installed, '.bulkhead'))).toBe(false);
    expect(existsSync(join(installed, 'dist/test'))).toBe(false);
  });
});
