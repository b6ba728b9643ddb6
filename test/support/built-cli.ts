import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/**
 * The real CLI, as users run it: `node dist/src/cli/main.js <verb>`. `npm test` builds first; when jest
 * runs alone and dist/ is older than the sources, this builds once (type errors elsewhere in the tree
 * do not stop tsc from emitting, so a half-finished file of someone else's does not block the CLI).
 */
const run = promisify(execFile);
export const ROOT = resolve(__dirname, '../..');
export const CLI = join(ROOT, 'dist/src/cli/main.js');

async function newestSource(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, await newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, (await stat(path)).mtimeMs);
  }
  return newest;
}

/** Builds dist/ if it is missing or older than src/, adapters/ or rotation/. Give the caller's hook a long timeout. */
export async function ensureBuiltCli(): Promise<string> {
  const built = existsSync(CLI) ? (await stat(CLI)).mtimeMs : 0;
  const sources = Math.max(await newestSource(join(ROOT, 'src')), await newestSource(join(ROOT, 'adapters')), await newestSource(join(ROOT, 'rotation')));
  if (built < sources) {
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT }).catch(() => undefined);
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing and the build did not produce it; run npm run build`);
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
