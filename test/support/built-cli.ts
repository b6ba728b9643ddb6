import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/**
 * The real CLI, as users run it: `node dist/src/cli/main.js <verb>`. `npm test` builds first; when jest
 * runs alone and dist/ is older than the sources, `ensureBuilt` compiles once. A lock directory keeps two
 * jest workers from compiling into dist at once.
 */
const run = promisify(execFile);
export const ROOT = resolve(__dirname, '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');
export const MAIN = CLI;

const SOURCE_DIRS = ['src', 'adapters', 'rotation'];
const LOCK = join(ROOT, 'dist/.cli-test-build.lock');

function newestSource(dir: string): number {
  let newest = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const path = join(dir, name);
    const info = statSync(path);
    if (info.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (name.endsWith('.ts')) newest = Math.max(newest, info.mtimeMs);
  }
  return newest;
}

function isFresh(): boolean {
  try {
    const built = statSync(MAIN).mtimeMs;
    return SOURCE_DIRS.every((dir) => newestSource(join(ROOT, dir)) <= built);
  } catch {
    return false;
  }
}

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function ensureBuilt(): void {
  if (isFresh()) return;
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      // Another worker is compiling; a lock left by a killed run is taken over after two minutes.
      const age = Date.now() - (statSync(LOCK, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > 120_000) rmSync(LOCK, { recursive: true, force: true });
      sleep(200);
    }
  }
  try {
    if (!isFresh()) {
      // Type errors in files still being written elsewhere do not stop tsc from emitting; what matters
      // here is that the CLI's JavaScript is current.
      const result = spawnSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
      if (result.error) throw result.error;
    }
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
  statSync(MAIN);
}

/** The async form for hooks that already await other setup. */
export async function ensureBuiltCli(): Promise<string> {
  ensureBuilt();
  return CLI;
}

/** Runs the built CLI; resolves with its exit code and output whatever the code. */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
