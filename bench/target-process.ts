import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The server under test runs in its own process and the load generator in this one, so on a 2-core
 * machine each gets a core instead of starving the other, and the floor servers and the broker are
 * measured the same way. A target is a module under dist/bench/targets/ that calls `serveTarget`.
 *
 * Protocol over the IPC channel: the parent sends `{type:'config', config}`, the child answers
 * `{type:'ready', info}` once listening (or `{type:'error', message}`); the parent
 * may ask `{type:'usage'}` (answered `{type:'usage', rss, cpu}`) and ends it with `{type:'stop'}`, on which the
 * child closes and exits normally, so `--cpu-prof` gets to write its profile.
 */

export interface Target<Info> {
  info: Info;
  pid: number;
  /**
   * Resident set size, heap and CPU time used so far (user + system, all threads, µs). With
   * `collect`, a full garbage collection runs first (the child must have been started with
   * --expose-gc), so heapUsed is what is really live.
   */
  usage(collect?: boolean): Promise<Usage>;
  rssBytes(): Promise<number>;
  stop(): Promise<void>;
}

export interface Usage {
  rssBytes: number;
  /** Live JavaScript heap; RSS minus this is mostly heap the process grew and has not handed back yet. */
  heapUsedBytes: number;
  cpuMicros: number;
}

export interface StartOptions {
  /** Extra node flags for the child, e.g. ['--cpu-prof', '--cpu-prof-dir=…']. */
  execArgv?: string[];
  env?: NodeJS.ProcessEnv;
  /** How long the child may take to become ready (a 10,000-tenant policy takes a while). */
  readyTimeoutMs?: number;
  /** Where the child's stdout goes (the broker logs there, as `bulkhead serve > file` would); default: discarded. */
  stdoutFile?: string;
  /** Another build's dist/bench directory, to run its target instead of this one (before/after comparisons). */
  benchDir?: string;
}

type Message = { type: 'ready'; info: unknown } | { type: 'usage'; rss: number; heap: number; cpu: number } | { type: 'error'; message: string };

export async function startTarget<Info>(name: string, config: unknown, options: StartOptions = {}): Promise<Target<Info>> {
  const stdout = options.stdoutFile === undefined ? 'ignore' : openSync(options.stdoutFile, 'a');
  const child = fork(join(options.benchDir ?? __dirname, 'targets', `${name}.js`), [], {
    execArgv: options.execArgv ?? [],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', stdout, 'inherit', 'ipc'],
  });
  if (typeof stdout === 'number') closeSync(stdout); // the child has its own copy
  // Over IPC, not argv: the config holds the bench's (throwaway) secrets, which argv would show in `ps`.
  child.send({ type: 'config', config });
  const info = await new Promise<Info>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`bench target ${name} was not ready in time`));
    }, options.readyTimeoutMs ?? 120_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`bench target ${name} exited with ${code} before it was ready`));
    });
    child.on('message', (message: Message) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.info as Info);
      } else if (message.type === 'error') {
        clearTimeout(timer);
        reject(new Error(`bench target ${name} failed: ${message.message}`));
      }
    });
  });
  child.removeAllListeners('exit');
  return {
    info,
    pid: child.pid!,
    usage: (collect = false) => askUsage(child, collect),
    rssBytes: async () => (await askUsage(child)).rssBytes,
    stop: () => stopChild(child),
  };
}

function askUsage(child: ChildProcess, collect = false): Promise<Usage> {
  return new Promise((resolve) => {
    const onMessage = (message: Message) => {
      if (message.type !== 'usage') return;
      child.off('message', onMessage);
      resolve({ rssBytes: message.rss, heapUsedBytes: message.heap, cpuMicros: message.cpu });
    };
    child.on('message', onMessage);
    child.send({ type: 'usage', collect });
  });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.send({ type: 'stop' });
  });
}

/** The child side: report `info` once ready, answer RSS queries, and run `close` before exiting on stop. */
export function serveTarget(start: (config: any) => Promise<{ info: unknown; close(): Promise<void> }>): void {
  process.once('message', (first: { type: string; config?: unknown }) => {
    if (first.type === 'config') run(start, first.config);
  });
}

function run(start: (config: any) => Promise<{ info: unknown; close(): Promise<void> }>, config: unknown): void {
  start(config).then(
    ({ info, close }) => {
      let closing: Promise<void> | undefined;
      const shutdown = () => {
        closing ??= close()
          .catch(() => undefined)
          .finally(() => process.exit(0));
      };
      process.on('message', (message: { type: string; collect?: boolean }) => {
        if (message.type === 'usage') {
          if (message.collect) global.gc?.();
          const cpu = process.cpuUsage();
          const memory = process.memoryUsage();
          process.send!({ type: 'usage', rss: memory.rss, heap: memory.heapUsed, cpu: cpu.user + cpu.system });
        }
        if (message.type === 'stop') shutdown();
      });
      // An orphaned target (the parent crashed) must not keep a port and a core busy.
      process.on('disconnect', shutdown);
      process.send!({ type: 'ready', info });
    },
    (err: unknown) => {
      process.send!({ type: 'error', message: err instanceof Error ? err.message : String(err) }, () => process.exit(1));
    },
  );
}
