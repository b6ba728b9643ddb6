import { Pool, type PoolClient } from 'pg';

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
 * Runs `work` in one transaction on one connection. On any error the transaction is rolled back and the
 * connection is discarded rather than reused, since after a timeout its state is unknown.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(err instanceof Error ? err : new Error(String(err)));
    throw err;
  }
}

