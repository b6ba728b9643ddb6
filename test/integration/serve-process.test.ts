import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, ensureBuilt, ROOT, runCli } from '../support/built-cli';

/**
 * `bulkhead serve` as a process, the way a supervisor runs it: through `npm start` (signals must reach
 * the broker, not stop at npm) and with `--listen unix:/path` (the sidecar socket).
 */

/** A port nobody listens on right now (the broker is then started on it). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves with the broker's "bulkhead listening" log line (pino JSON on stdout). */
function listening(child: ChildProcess): Promise<{ urls: string[] }> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split('\n')) {
        if (!line.includes('"bulkhead listening"')) continue;
        const record = JSON.parse(line) as { urls: string[] };
        resolve(record);
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${stderr}`)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function readyz(target: { port: number } | { socketPath: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ ...('port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.socketPath }), path: '/readyz' }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

/** The processes whose parent is `pid` (from /proc: field 4 of stat, after the parenthesised name). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry));
    } catch {
      // gone in between
    }
  }
  return children;
}

const commandOf = (pid: number): string => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');

describe('bulkhead serve as a process', () => {
  let dir: string;
  const started: ChildProcess[] = [];
  /** Broker pids started under npm: if the test fails they outlive npm, and are killed here. */
  const brokers: number[] = [];

  beforeAll(async () => {
    ensureBuilt();
    dir = await mkdtemp(join(tmpdir(), 'bh-serve-'));
  }, 180_000);

  afterAll(async () => {
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of brokers) if (alive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('npm start builds first (prestart) and execs the broker: SIGTERM to npm stops the broker and closes the port', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(manifest.scripts.prestart).toBe('npm run build --silent');
    expect(manifest.scripts.start).toMatch(/^exec node dist\/src\/cli\/main\.js serve$/);
    const port = await freePort();
    // --ignore-scripts skips prestart only (dist is built above); the start script itself still runs.
    const npm = spawn('npm', ['start', '--silent', '--ignore-scripts', '--', '--data-dir', join(dir, 'npm-start'), '--port', String(port)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(npm);
    await listening(npm);
    // exec: the broker is npm's own child, with no shell between them to swallow the signal.
    const children = childrenOf(npm.pid!);
    expect(children).toHaveLength(1);
    const pid = children[0]!;
    brokers.push(pid);
    expect(commandOf(pid)).toMatch(/node dist\/src\/cli\/main\.js serve --data-dir/);
    expect(await readyz({ port })).toBe(200);

    npm.kill('SIGTERM');
    await once(npm, 'exit');
    for (let i = 0; alive(pid) && i < 100; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(pid)).toBe(false);
    expect(await refused(port)).toBe(true);
  }, 60_000);

  it('serves --listen unix:/path beside TCP, 0600, and removes the socket at SIGTERM', async () => {
    const socketPath = join(dir, 'both.sock');
    const port = await freePort();
    const broker = spawn(process.execPath, [CLI, 'serve', '--data-dir', join(dir, 'both'), '--port', String(port), '--listen', `unix:${socketPath}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(broker);
    const { urls } = await listening(broker);
    expect(urls).toEqual([`http://127.0.0.1:${port}`, `unix:${socketPath}`]);
    expect(lstatSync(socketPath).mode & 0o777).toBe(0o600);
    expect(await readyz({ socketPath })).toBe(200);
    expect(await readyz({ port })).toBe(200);
    broker.kill('SIGTERM');
    const [code] = await once(broker, 'exit');
    expect(code).toBe(0);
    expect(() => lstatSync(socketPath)).toThrow(/ENOENT/);
  });

  it('serves only the socket when --listen is given without --host/--port, with --listen-mode', async () => {
    const socketPath = join(dir, 'only.sock');
    const broker = spawn(process.execPath, [CLI, 'serve', '--data-dir', join(dir, 'only'), '--listen', `unix:${socketPath}`, '--listen-mode', '0660'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(broker);
    const { urls } = await listening(broker);
    expect(urls).toEqual([`unix:${socketPath}`]);
    expect(lstatSync(socketPath).mode & 0o777).toBe(0o660);
    // The CLI reaches it there too: the banner's token command, and an operator verb (demo operator token).
    const data = ['--data-dir', join(dir, 'only'), '--url', `unix:${socketPath}`];
    const token = await runCli(['token', '--client-id', 'acme-agent', '--audience', 'demo-mcp', ...data]);
    expect({ code: token.code, stderr: token.stderr }).toEqual({ code: 0, stderr: '' });
    expect(token.stdout).toMatch(/eyJ/);
    const approvals = await runCli(['approvals', 'list', '--tenant', 'acme', ...data]);
    expect({ code: approvals.code, stderr: approvals.stderr }).toEqual({ code: 0, stderr: '' });
    const nobody = await runCli(['approvals', 'list', '--tenant', 'acme', '--data-dir', join(dir, 'only'), '--url', `unix:${join(dir, 'nobody.sock')}`]);
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toMatch(/cannot reach the broker at unix:/);
    broker.kill('SIGTERM');
    await once(broker, 'exit');
  });

  it('refuses to start on a path that is not a stale socket, and on bad --listen values', async () => {
    const file = join(dir, 'taken.sock');
    writeFileSync(file, 'keep me');
    const cases: Array<{ args: string[]; code: number; message: RegExp }> = [
      { args: ['--listen', `unix:${file}`], code: 1, message: /exists and is not a socket; refusing to replace it/ },
      { args: ['--listen', 'unix:relative.sock'], code: 2, message: /must be absolute/ },
      { args: ['--listen', 'localhost'], code: 2, message: /--listen must be unix:\/abs\/path or HOST:PORT/ },
      { args: ['--listen', `unix:${join(dir, 'm.sock')}`, '--listen-mode', '777x'], code: 2, message: /--listen-mode must be octal/ },
    ];
    for (const c of cases) {
      const child = spawn(process.execPath, [CLI, 'serve', '--data-dir', join(dir, 'refused'), ...c.args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      started.push(child);
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const [code] = await once(child, 'exit');
      expect({ args: c.args, code, message: c.message.test(stderr) ? 'matches' : stderr }).toEqual({ args: c.args, code: c.code, message: 'matches' });
    }
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  });
});
