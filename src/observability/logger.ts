import pino, { type Logger } from 'pino';

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
   * Where to write; defaults to stdout, written asynchronously (a log call only appends to a buffer that
   * is written while the broker goes on; what is still buffered at exit is flushed synchronously by
   * pino). Tests pass a stream to search the output for secrets.
   */
  destination?: NodeJS.WritableStream;
}

/**
 * Buffered log writes: a line is appended to a buffer that is written once it holds 4 kB, and at least
 * every 100 ms, so a burst of requests costs one write, not one per line. Each write is a trip to the
 * thread pool; one per line cost ~9 % of the broker's CPU per tool call under load on 2 cores (two
 * lines a call; docs/benchmarks.md, session 8). A line is on stdout within 100 ms; at exit (also after
 * an uncaught exception) pino flushes the rest.
 */
const BUFFERED_STDOUT = { dest: 1, sync: false, minLength: 4096, periodicFlush: 100 } as const;

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? process.env.BULKHEAD_LOG_LEVEL ?? 'info',
      base: { service: 'bulkhead' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        err: serializeError,
        error: serializeError,
      },
    },
    options.destination ?? pino.destination(BUFFERED_STDOUT),
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
