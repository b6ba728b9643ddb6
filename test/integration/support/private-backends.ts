import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { freePort } from '../../../bench/cluster';

/**
 * A redis-server or a PostgreSQL cluster of the test's own, on its own port and data dir, so a test can
 * stop and restart it mid-run without touching the instances other engineers' tests share.
 */
const run = promisify(execFile);

async function waitForPort(port: number, up: boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open === up) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not ${up ? 'open' : 'close'} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** SIGKILL: Redis vanishes mid-command, as in a crash. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: no persistence). */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', join(dir, 'redis.log')], {
      stdio: 'ignore',
    });
    const proc = child;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitForPort(port, true);
  }
  async function kill(): Promise<void> {
    child?.kill('SIGKILL');
    await exited;
    child = undefined;
  }
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    kill,
    start,
    async destroy() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface PrivatePostgres {
  /** Superuser URL to the `postgres` database (trust auth on loopback; throwaway). */
  url: string;
  port: number;
  /** pg_ctl stop -m immediate: the server goes away without a clean shutdown. */
  stop(): Promise<void>;
  /** pg_ctl stop -m fast: every session is terminated (mid-transaction too), then the server exits. */
  stopFast(): Promise<void>;
  start(): Promise<void>;
  /** Runs one statement as the superuser, on a connection of its own. */
  sql(text: string): Promise<Array<Record<string, unknown>>>;
  /** The postmaster's pid and its children's (backends, background workers). */
  processes(): number[];
  /** SIGSTOP to every server process: connections stay open and nothing answers (a hung server). */
  freeze(): void;
  /** SIGCONT: the hung server carries on. */
  thaw(): void;
  destroy(): Promise<void>;
}

function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'pg_ctl'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (install postgresql)');
  return join(base, versions[0], 'bin');
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-pg-'));
  const data = join(dir, 'data');
  // The server refuses to run as root: as root, run it as the `postgres` user and give it the directory
  // (as scripts/upstreams.sh does).
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).stdout.trim());
    chownSync(dir, await id('-u'), await id('-g'));
  }
  const pg = (tool: string, args: string[]) => (asRoot ? run('runuser', ['-u', 'postgres', '--', join(bin, tool), ...args], { cwd: '/' }) : run(join(bin, tool), args));

  await pg('initdb', ['-D', data, '-U', 'bulkhead', '--auth=trust', '-E', 'UTF8', '--locale=C']);
  const conf = join(data, 'postgresql.conf');
  appendFileSync(conf, `\nlisten_addresses = '127.0.0.1'\nport = ${port}\nunix_socket_directories = '${dir}'\nfsync = off\nfull_page_writes = off\n`);

  const start = async () => {
    await pg('pg_ctl', ['start', '-D', data, '-l', join(dir, 'postgres.log'), '-w', '-t', '30', '-s']);
    await waitForPort(port, true);
  };
  const stopWith = async (mode: 'immediate' | 'fast') => {
    await pg('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '30', '-s']).catch(() => undefined);
    await waitForPort(port, false);
  };
  const url = `postgres://bulkhead@127.0.0.1:${port}/postgres`;
  const processes = (): number[] => {
    const pidFile = join(data, 'postmaster.pid');
    if (!existsSync(pidFile)) return [];
    const postmaster = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    const children = readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .filter((pid) => {
        try {
          // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces, so split after ')'.
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster;
        } catch {
          return false;
        }
      })
      .map(Number);
    return [postmaster, ...children];
  };
  const signalAll = (signal: NodeJS.Signals) => {
    for (const pid of processes()) {
      try {
        process.kill(pid, signal);
      } catch {
        // Exited in between.
      }
    }
  };
  await start();
  return {
    url,
    port,
    stop: () => stopWith('immediate'),
    stopFast: () => stopWith('fast'),
    start,
    async sql(text) {
      const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query(text)).rows;
      } finally {
        await client.end().catch(() => undefined);
      }
    },
    processes,
    freeze: () => signalAll('SIGSTOP'),
    thaw: () => signalAll('SIGCONT'),
    async destroy() {
      signalAll('SIGCONT');
      await stopWith('immediate');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
