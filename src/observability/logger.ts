import pino, { type Logger } from 'pino';
import { createStdoutWriter, type StdoutWriter } from './stdout-writer';

/**
 * Structured JSON logs. Request logging uses an allow-list serializer (method, path, status, id): no
 * headers, no bodies, no query strings. `redact` is the backstop for anything that slips into a log
 * object under a sensitive name.
 */
export const REDACT_PATHS = [
  'token',
  'access_token',
  'subject_token',
  'client_secret',
  'secret',
  'value',
  'password',
  'authorization',
  'credential.value',
  '*.token',
  '*.access_token',
  '*.client_secret',
  '*.secret',
  '*.value',
  '*.password',
  '*.authorization',
  'req.headers',
  'body',
  '*.body',
];

export interface LoggerOptions {
  level?: string;
  /**
   * Where to write; defaults to stdout in 4 kB chunks (a log call only appends to a buffer; what is
   * still buffered at exit is written before the process ends: stdout-writer.ts).
   * Tests pass a stream to search the output for secrets.
   */
  destination?: NodeJS.WritableStream;
}

/**
 * Buffered log writes: lines are gathered into 4 kB chunks (written at least every 100 ms; to a file
 * right away, to a pipe or socket by a thread of their own: stdout-writer.ts), so a burst of requests
 * costs one write. A write per line, each a trip to the thread pool, cost ~9 % of the broker's CPU
 * per tool call under load on 2 cores (two lines a call; docs/benchmarks.md, session 8). A line is on
 * stdout within 100 ms; at exit (also after an uncaught exception) every line is written, in order.
 *
 * The buffer is bounded: when whoever reads stdout stops reading, lines past MAX_BUFFERED_LOG_BYTES are
 * dropped and counted rather than held until the process runs out of memory (logs are not the audit
 * record, which is durable before every answer). Once stdout takes writes again, one warning line says
 * how many were dropped.
 */
export const MAX_BUFFERED_LOG_BYTES = 16 * 1024 * 1024;

/** The fields every line carries. */
const BASE = { service: 'bulkhead' } as const;

/** One writer per process for stdout, whatever the number of loggers (the CLI and tests make several). */
let stdout: StdoutWriter | undefined;
const stdoutWriter = (): StdoutWriter =>
  (stdout ??= createStdoutWriter({
    maxBufferedBytes: MAX_BUFFERED_LOG_BYTES,
    // Written as a pino warn line would be (same base fields), also at levels that would hide a warning.
    droppedLine: (dropped) => `${JSON.stringify({ level: 40, time: Date.now(), ...BASE, dropped, msg: 'log lines dropped: stdout was not being read' })}\n`,
  }));

/** Lines dropped so far by this process, for `bulkhead_log_lines_dropped_total`. */
export const droppedLogLines = (): number => stdout?.dropped() ?? 0;

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.BULKHEAD_LOG_LEVEL ?? 'info',
      base: BASE,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        err: serializeError,
        error: serializeError,
      },
    },
    options.destination ?? stdoutWriter(),
  );
}

/** The paths of REDACT_PATHS that name a top-level field. */
const TOP_LEVEL_REDACT_PATHS = REDACT_PATHS.filter((path) => !path.includes('.'));

/**
 * The logger for per-request lines: the same destination, with redaction of top-level fields only. A
 * request line is a flat allow-list of primitives (method, path, status, ids, a reason code), so the
 * nested paths could never match, and checking them cost ~11 µs per line, two lines per tool call.
 */
export function requestLineLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: TOP_LEVEL_REDACT_PATHS, censor: '[redacted]' } });
}

/** Errors keep their type, code and stack-free message; upstream response bodies are dropped. */
function serializeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err).slice(0, 200) };
  const e = err as Error & { code?: unknown; reason?: unknown; statusCode?: unknown; cause?: unknown };
  return {
    type: e.name,
    message: e.message.slice(0, 500),
    ...(e.code !== undefined ? { code: String(e.code) } : {}),
    ...(e.reason !== undefined ? { reason: String(e.reason) } : {}),
    ...(e.statusCode !== undefined ? { status: Number(e.statusCode) } : {}),
    ...(e.cause instanceof Error ? { cause: serializeError(e.cause) } : {}),
  };
}
