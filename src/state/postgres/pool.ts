import { Pool, type PoolClient } from 'pg';
import { settleBy } from '../../deadline';

/**
 * The PostgreSQL connection pool for shared state. Every way a call can wait is bounded by `timeoutMs`:
 * getting a connection (connectionTimeoutMillis), the server running a statement (statement_timeout),
 * waiting for a row lock (lock_timeout), and the reply arriving at all (query_timeout, which also covers
 * a server that stopped answering without closing the socket). A caller therefore always gets an answer
 * or an error in bounded time, and the authorize path turns the error into a 503.
 *
 * `synchronous_commit = on` for every session: a commit this pool reports is on the server's disk
 * (audit records and revocations are promised durable), whatever the server's default is.
 */
export interface PgPoolOptions {
  url: string;
  timeoutMs: number;
  max?: number;
  /** Called for errors of idle connections (the server went away); without a listener they would crash the process. */
  onIdleError?: (err: Error) => void;
}

export function createPgPool(options: PgPoolOptions): Pool {
  const pool = new Pool({
    connectionString: options.url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.timeoutMs,
    idleTimeoutMillis: 30_000,
    statement_timeout: options.timeoutMs,
    query_timeout: options.timeoutMs,
    lock_timeout: options.timeoutMs,
    idle_in_transaction_session_timeout: Math.max(10_000, options.timeoutMs * 5),
    keepAlive: true,
    application_name: 'bulkhead',
    options: '-c synchronous_commit=on',
  });
  pool.on('error', (err) => options.onIdleError?.(err));
  return pool;
}

/**
 * Runs `work` in one transaction on one connection, within `signal` (a deadline from src/deadline.ts)
 * when given: the whole transaction, from waiting for a connection to COMMIT, is one bound, so a hung
 * server costs a caller at most that long, however many statements the transaction has.
 *
 * The connection is discarded rather than reused after any failure, since its state is then unknown;
 * closing it makes the server roll back. (No ROLLBACK is sent: on a connection that just timed out it
 * would wait a whole timeout of its own before failing too.)
 *
 * While checked out, a client is the caller's to watch: pg emits 'error' on it when the server drops the
 * connection (a crash, pg_terminate_backend, a fast shutdown, a failover), and an 'error' event without
 * a listener ends the process. The listener here turns it into this transaction's failure instead.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>, signal?: AbortSignal): Promise<T> {
  signal?.throwIfAborted();
  const connecting = pool.connect();
  let client: PoolClient;
  try {
    client = await settleBy(connecting, signal);
  } catch (err) {
    // A connection that arrives after the deadline goes straight back.
    connecting.then((late) => late.release(), () => undefined);
    throw err;
  }

  let lost: Error | undefined;
  const onError = (err: Error) => {
    lost ??= err;
  };
  client.on('error', onError);
  let released = false;
  const discard = (err: Error) => {
    if (released) return;
    released = true;
    // The listener stays: a discarded client can still report its socket's end, and must not crash us.
    client.release(err);
  };
  const onAbort = () => discard(signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)));
  signal?.addEventListener('abort', onAbort, { once: true });

  const run = async () => {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  };
  try {
    const result = await settleBy(run(), signal);
    // COMMIT answered, so the work is durable; a connection that died just after is still not reused.
    if (lost) {
      discard(lost);
    } else {
      released = true;
      client.removeListener('error', onError);
      client.release();
    }
    return result;
  } catch (err) {
    discard(err instanceof Error ? err : new Error(String(err)));
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
