import { fstatSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * Log lines to stdout in chunks, in order, all of them at exit, and never stalled by a slow reader.
 *
 * Lines are gathered into chunks (a chunk goes once it holds `chunkBytes`, and at least every
 * `flushEveryMs`). When stdout is a file, a terminal or /dev/null, a chunk is written right there,
 * synchronously: such a write never waits for a reader. When it is a pipe or a socket, a thread of its
 * own writes the chunks, one after the other, with blocking writes, so a stalled reader stalls that
 * thread only. Why not asynchronous `fs.write` (sonic-boom's async mode, used before): at exit a
 * synchronous flush must come after the write already in flight, and an `fs.write` handed to libuv's
 * pool cannot be waited for, so the last lines came out before the chunk in flight, or that chunk was
 * lost when the process exited first (sonic-boom #101; seen in CI after an uncaught exception). Here
 * the exit flush hands the rest to the thread and waits, on a shared counter, until every chunk is
 * written (at most `exitWaitMs`, so an exit never hangs on a stdout nobody reads).
 *
 * Bounded: lines not yet written (gathered or in the thread's queue) may hold `maxBufferedBytes`; past
 * that, while stdout is not being read, lines are dropped and counted, and once it takes writes again one
 * warning line says how many (logs are not the audit record, which is durable before every answer). A
 * chunk written directly is never queued; lines a failing write (a full disk) did not take are counted
 * the same way.
 */
export interface StdoutWriter {
  /** Takes one line (with its newline); false is never returned: a line over the bound is counted instead. */
  write(line: string): boolean;
  /** Writes (or hands the thread) what is gathered, and waits until everything is written (or `exitWaitMs` passed). */
  flushSync(): void;
  /** Lines dropped since the start. */
  dropped(): number;
}

export interface StdoutWriterOptions {
  fd?: number;
  chunkBytes?: number;
  flushEveryMs?: number;
  maxBufferedBytes: number;
  exitWaitMs?: number;
  /** The warning line for `n` dropped lines, as the logger would write it. */
  droppedLine: (n: number) => string;
}

// Plain JavaScript, run with `eval`: the same source in the build and under ts-jest. Counters in the
// shared array: [0] chunks written (or given up: a stdout that fails with anything but EAGAIN, such as
// EPIPE once the reader is gone, takes no more).
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const counters = new Int32Array(workerData.counters);
const pause = new Int32Array(new SharedArrayBuffer(4));
let broken = false;
parentPort.on('message', (chunk) => {
  let bytes = Buffer.from(chunk, 'utf8');
  while (!broken && bytes.length > 0) {
    try {
      bytes = bytes.subarray(writeSync(workerData.fd, bytes));
    } catch (err) {
      if (err.code === 'EAGAIN') Atomics.wait(pause, 0, 0, 5);
      else broken = true;
    }
  }
  Atomics.add(counters, 0, 1);
  Atomics.notify(counters, 0);
});
`;

export function createStdoutWriter(options: StdoutWriterOptions): StdoutWriter {
  const { fd = 1, chunkBytes = 4096, flushEveryMs = 100, maxBufferedBytes, exitWaitMs = 5000 } = options;
  const counters = new Int32Array(new SharedArrayBuffer(4));
  let thread: Worker | undefined;
  let gathered = '';
  /** Chunks the thread has written, as far as `reap` has seen. */
  let reaped = 0;
  /** Lengths of the chunks posted and not yet written, oldest first. */
  const queued: number[] = [];
  let queuedLength = 0;
  let droppedSinceWarning = 0;
  let droppedTotal = 0;

  const direct = writesFinishOnTheirOwn(fd);

  const post = () => {
    if (gathered === '') return;
    if (direct) {
      writeHere(gathered);
      gathered = '';
      return;
    }
    // Started at the first chunk, not at the first line: a process that logs nothing has no thread.
    thread ??= startThread(fd, counters);
    thread.postMessage(gathered);
    queued.push(gathered.length);
    queuedLength += gathered.length;
    gathered = '';
  };

  /** Forgets the chunks the thread has written; after a drop, says so once there is room again. */
  const reap = () => {
    const written = Atomics.load(counters, 0);
    while (reaped < written) {
      queuedLength -= queued.shift()!;
      reaped++;
    }
    if (droppedSinceWarning > 0 && queuedLength + gathered.length <= maxBufferedBytes / 2) {
      gathered += options.droppedLine(droppedSinceWarning);
      droppedSinceWarning = 0;
    }
  };

  /** Writes a chunk on this thread; lines a failing stdout (a full disk) did not take are counted as dropped. */
  const writeHere = (chunk: string) => {
    let bytes = Buffer.from(chunk, 'utf8');
    try {
      while (bytes.length > 0) bytes = bytes.subarray(writeSync(fd, bytes));
    } catch {
      const lost = bytes.toString('utf8').split('\n').length - 1;
      droppedSinceWarning += lost;
      droppedTotal += lost;
    }
  };

  const timer = setInterval(() => {
    reap();
    post();
  }, flushEveryMs);
  timer.unref();

  const writer: StdoutWriter = {
    write(line) {
      // Lengths in UTF-16 units, not bytes: a bound, not an account (the same measure sonic-boom used).
      if (queuedLength + gathered.length + line.length > maxBufferedBytes) {
        reap();
        if (queuedLength + gathered.length + line.length > maxBufferedBytes) {
          droppedSinceWarning++;
          droppedTotal++;
          return true;
        }
      }
      gathered += line;
      if (gathered.length >= chunkBytes) {
        reap();
        post();
      }
      return true;
    },
    flushSync() {
      reap();
      post();
      const posted = reaped + queued.length;
      const deadline = Date.now() + exitWaitMs;
      for (let written = Atomics.load(counters, 0); written < posted; written = Atomics.load(counters, 0)) {
        const left = deadline - Date.now();
        if (left <= 0) return;
        Atomics.wait(counters, 0, written, left);
      }
    },
    dropped: () => droppedTotal,
  };
  // Also after an uncaught exception: Node emits 'exit' then too, and the thread runs until every handler returned.
  process.once('exit', () => writer.flushSync());
  return writer;
}

/**
 * A regular file, a terminal or /dev/null: a write there ends without waiting for a reader, so chunks are
 * written right away on the caller's thread, in order, and no thread is started (a Node thread costs
 * ~15–20 MB of RSS). A pipe, a socket or a FIFO can block for as long as its reader stalls.
 */
function writesFinishOnTheirOwn(fd: number): boolean {
  try {
    const stat = fstatSync(fd);
    return stat.isFile() || stat.isCharacterDevice();
  } catch {
    return false;
  }
}

function startThread(fd: number, counters: Int32Array): Worker {
  const thread = new Worker(THREAD_SOURCE, { eval: true, workerData: { fd, counters: counters.buffer }, stdout: false, stderr: false });
  // It never keeps the process alive; the exit flush waits for it instead.
  thread.unref();
  return thread;
}
