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
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
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
