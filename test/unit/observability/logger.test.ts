import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createLogger, REDACT_PATHS, requestLineLogger } from '../../../src/observability/logger';
import { ensureBuilt, ROOT } from '../../support/built-cli';

/**
 * The broker's logs: sensitive names are redacted wherever they sit (the request-line logger, which only
 * logs flat allow-listed fields, still redacts every top-level one), and the buffered stdout destination
 * loses nothing: a line is written while the process runs (not only once 4 kB piled up), and everything
 * logged before an exit is on stdout after it. When stdout is not read, its buffer stays bounded and
 * every line is accounted for: on stdout, or counted in a warning once stdout drains.
 */
function capture(): { stream: PassThrough; lines: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  return { stream, lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const SECRET = 'sk-live-do-not-log';
const TOP_LEVEL = REDACT_PATHS.filter((path) => !path.includes('.'));

test.each(TOP_LEVEL)('a request line never carries a top-level "%s"', async (field) => {
  const out = capture();
  requestLineLogger(createLogger({ destination: out.stream })).info({ requestId: 'r1', method: 'POST', path: '/v1/authorize', status: 200, [field]: SECRET }, 'request');
  await new Promise(setImmediate);
  const [line] = out.lines();
  expect(line!.path).toBe('/v1/authorize');
  expect(line![field]).toBe('[redacted]');
  expect(JSON.stringify(out.lines())).not.toContain(SECRET);
});

test('the broker logger redacts nested sensitive fields too, and the request-line logger leaves it so', async () => {
  const out = capture();
  const logger = createLogger({ destination: out.stream });
  requestLineLogger(logger).info({ status: 200 }, 'request');
  logger.info({ credential: { value: SECRET }, upstream: { password: SECRET, token: SECRET }, req: { headers: { authorization: SECRET } }, body: SECRET }, 'event');
  await new Promise(setImmediate);
  expect(out.lines()).toHaveLength(2);
  expect(JSON.stringify(out.lines())).not.toContain(SECRET);
});

const dist = (module: string) => JSON.stringify(join(ROOT, 'dist/src/observability', module));

/** Runs the built logger on its default destination, stdout, in a child process; `dist(file)` names a built module. */
function child(script: string) {
  ensureBuilt();
  const proc = spawn(process.execPath, ['-e', `const { createLogger, requestLineLogger } = require(${dist('logger.js')});\n${script}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let text = '';
  let stderr = '';
  proc.stdout.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8'))); // also the uncaught exception's report
  const exited = new Promise<number | null>((resolve) => proc.on('close', resolve));
  return { stdout: proc.stdout, text: () => text, stderr: () => stderr, lines: () => text.split('\n').filter(Boolean), exited, send: (t: string) => proc.stdin.write(t) };
}

test('a single line reaches stdout while the process keeps running (a quiet broker still logs)', async () => {
  const run = child(`requestLineLogger(createLogger()).info({ status: 200 }, 'only line'); process.stdin.on('data', () => process.exit(0));`);
  while (run.lines().length === 0) await new Promise((r) => setTimeout(r, 20));
  expect(JSON.parse(run.lines()[0]!).msg).toBe('only line');
  run.send('stop\n');
  expect(await run.exited).toBe(0);
});

test.each([
  ['process.exit()', 'process.exit(0)'],
  ['the end of the event loop', ''],
  ['an uncaught exception', `setImmediate(() => { throw new Error('boom'); })`],
])('every line logged before %s is on stdout, in order', async (_how, ending) => {
  // Enough lines that a chunk is still being written when the process ends: an exit flush that does not
  // wait for it put the last lines before that chunk (or lost it). Three runs, since that is a race.
  for (let run = 0; run < 3; run++) {
    const proc = child(`const log = createLogger(); for (let i = 0; i < 20000; i++) log.info({ i }, 'line'); ${ending}`);
    await proc.exited;
    const seen = proc.lines().map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seen).toEqual(Array.from({ length: 20000 }, (_, i) => i));
  }
});

test.each([
  ['process.exit()', 'process.exit(0)'],
  ['an uncaught exception', `setImmediate(() => { throw new Error('boom'); })`],
])('stdout redirected to a file (written on the event loop, no thread): every line logged before %s is in it, in order', async (_how, ending) => {
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'bulkhead-log-file-'));
  try {
    const file = join(dir, 'stdout.log');
    const fd = openSync(file, 'w');
    const proc = spawn(process.execPath, ['-e', `const { createLogger } = require(${dist('logger.js')}); const log = createLogger(); for (let i = 0; i < 20000; i++) log.info({ i }, 'line'); ${ending}`], { stdio: ['ignore', fd, 'ignore'] });
    closeSync(fd);
    await new Promise((resolve) => proc.on('close', resolve));
    const seen = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seen).toEqual(Array.from({ length: 20000 }, (_, i) => i));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('while stdout is not being read, lines past the buffer limit are dropped and counted, and the count is logged once it drains and scraped as a metric', async () => {
  const LINES = 30_000; // ~1 kB each: about twice MAX_BUFFERED_LOG_BYTES
  const run = child(`const log = createLogger(); const pad = 'x'.repeat(1000);
    for (let i = 0; i < ${LINES}; i++) log.info({ i, pad }, 'line');
    process.stderr.write('logged\\n');
    const { createMetrics } = require(${dist('metrics.js')});
    process.stdin.once('data', async () => {
      log.info('after');
      const metrics = (await createMetrics().registry.metrics()).split('\\n').find((l) => l.startsWith('bulkhead_log_lines_dropped_total '));
      process.stderr.write('metric ' + metrics + '\\n');
      process.exit(0);
    });`);
  // Nobody reads stdout until the child has logged everything: the pipe fills and the buffer hits its bound.
  run.stdout.pause();
  while (!run.stderr().includes('logged')) await new Promise((r) => setTimeout(r, 20));
  run.stdout.resume();
  // Reading again lets the blocked write finish; the next write says how many lines were dropped.
  while (!run.text().includes('log lines dropped')) await new Promise((r) => setTimeout(r, 20));
  run.send('go\n');
  expect(await run.exited).toBe(0);

  const lines = run.lines().map((l) => JSON.parse(l) as { i?: number; msg: string; dropped?: number; level: number });
  const kept = lines.filter((l) => l.msg === 'line').map((l) => l.i!);
  const notices = lines.filter((l) => l.msg === 'log lines dropped: stdout was not being read');
  const dropped = notices.reduce((n, l) => n + l.dropped!, 0);
  expect(notices.length).toBeGreaterThan(0);
  expect(notices.every((l) => l.level === 40)).toBe(true);
  // The count is exact: every line is either on stdout, once and in order, or counted as dropped.
  expect(new Set(kept).size).toBe(kept.length);
  expect(kept).toEqual([...kept].sort((a, b) => a - b));
  expect(kept.length + dropped).toBe(LINES);
  expect(dropped).toBeGreaterThan(0);
  expect(lines.at(-1)!.msg).toBe('after');
  // The same count is what a scrape of /metrics reads.
  expect(/metric bulkhead_log_lines_dropped_total (\d+)/.exec(run.stderr())?.[1]).toBe(String(dropped));
});

test('an exit does not wait forever for a stdout nobody reads: the exit flush gives up after its bound', async () => {
  // 5 MB for a pipe that holds 64 kB and is never read while the child runs: the writer thread blocks.
  const run = child(`const { createStdoutWriter } = require(${dist('stdout-writer.js')});
    const writer = createStdoutWriter({ maxBufferedBytes: 64 << 20, exitWaitMs: 300, droppedLine: () => '' });
    const line = 'x'.repeat(1000) + '\\n';
    for (let i = 0; i < 5000; i++) writer.write(line);
    process.stderr.write('written\\n');
    setTimeout(() => process.exit(7), 200);`);
  run.stdout.pause();
  // With an exit flush that waited for every chunk, this would never resolve (the test's timeout fails it).
  const code = await new Promise<number | null>((resolve) => run.exited.then(resolve));
  expect(run.stderr()).toContain('written');
  expect(code).toBe(7);
  run.stdout.resume();
});
