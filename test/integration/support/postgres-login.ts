import { Client } from 'pg';

/**
 * Tries to log in to the upstream PostgreSQL as a Vault-issued user. Returns the user the server says
 * we are, or the error code of the refusal (28P01 wrong password, 28000 role gone/not allowed to log in).
 */
export async function tryPostgresLogin(databaseUrl: string, credential: { username: string; password: string }): Promise<{ ok: true; user: string } | { ok: false; code: string }> {
  const url = new URL(databaseUrl);
  const client = new Client({
    host: url.hostname,
    port: Number(url.port || 5432),
    database: url.pathname.slice(1),
    user: credential.username,
    password: credential.password,
    connectionTimeoutMillis: 5000,
  });
  try {
    await client.connect();
    const result = await client.query('SELECT current_user AS user');
    return { ok: true, user: result.rows[0].user as string };
  } catch (err) {
    return { ok: false, code: String((err as { code?: unknown }).code ?? (err as Error).name) };
  } finally {
    await client.end().catch(() => undefined);
  }
}
