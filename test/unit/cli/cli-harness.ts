import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * Runs the BUILT CLI (`node dist/src/cli/main.js`) the way a user does; `ensureBuilt` (test/support/
 * built-cli.ts) compiles first when any source is newer than dist.
 */
export { ensureBuilt, MAIN, ROOT } from '../../support/built-cli';
import { MAIN, ROOT } from '../../support/built-cli';

/** An environment without any BULKHEAD_* a developer may have exported, so runs are deterministic. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('BULKHEAD_')) env[key] = value;
  return { ...env, BULKHEAD_LOG_LEVEL: 'warn', ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
}

// Each run is a fresh node process; a few at a time keeps a two-core machine busy without thrashing it.
const MAX_PARALLEL = 4;
let running = 0;
const waiting: Array<() => void> = [];

export async function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  if (running >= MAX_PARALLEL) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    return await spawnCli(args, options);
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/**
 * Memoised runs: a suite can start every independent command at once in beforeAll, then each test
 * awaits its own answer. Only for commands whose outcome does not depend on order.
 */
export function cliCache(): { run(args: string[], options?: CliOptions): Promise<CliResult> } {
  const runs = new Map<string, Promise<CliResult>>();
  return {
    run(args, options = {}) {
      const key = JSON.stringify([args, options]);
      let result = runs.get(key);
      if (!result) runs.set(key, (result = runCli(args, options)));
      return result;
    },
  };
}

/** runCli that keeps every stdout and stderr, so a suite can finally search all of them for secrets. */
export function recordingCli(): { run(args: string[], options?: CliOptions): Promise<CliResult>; output(): string } {
  const outputs: string[] = [];
  return {
    async run(args, options) {
      const result = await runCli(args, options);
      outputs.push(result.stdout, result.stderr);
      return result;
    },
    output: () => outputs.join('\n'),
  };
}

function spawnCli(args: string[], options: CliOptions): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: options.cwd ?? ROOT, env: cleanEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

export interface RunningServe {
  url: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** `bulkhead serve …`, resolved once the process has printed `ready` (or rejected if it exits first). */
export function startServe(args: string[], ready: RegExp, env: Record<string, string> = {}): Promise<RunningServe> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [MAIN, 'serve', ...args], { cwd: ROOT, env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let settled = false;
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match = ready.exec(output);
      if (match && !settled) {
        settled = true;
        resolvePromise({
          url: match[1] ?? '',
          child,
          output: () => output,
          stop: async () => {
            if (child.exitCode === null) child.kill('SIGTERM');
            return exited;
          },
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      if (!settled) {
        settled = true;
        reject(new Error(`serve exited with ${code} before it was ready:\n${output}`));
      }
    });
  });
}

/** A port nobody is listening on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}
