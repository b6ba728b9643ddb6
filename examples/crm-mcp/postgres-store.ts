import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { CrmAccessError, demoDataset, parsePath, TABLES, type CrmStore, type Row, type Table } from './crm-store';

/**
 * The CRM over PostgreSQL. The credential Bulkhead resolves for a tenant is a connection string for
 * that tenant's own database role; each tenant's rows live in a schema only its role may use, so the
 * database itself refuses acme's credential on globex's tables. The server holds no database password:
 * it connects per call with the credential it was handed, and disconnects when the call ends.
 *
 * `setupPostgresDemo` creates that layout (schema, tables, rows, role) for some namespaces and returns
 * each role's connection string, which is what an operator stores in Bulkhead as the tenant's `crm`
 * credential (Vault/OpenBao's database engine can mint the same kind of per-tenant login).
 */

export interface PostgresStoreOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}

const IDENT = /^[a-z][a-z0-9_]{0,40}$/;
const ident = (name: string): string => {
  if (!IDENT.test(name)) throw new CrmAccessError(`"${name}" is not a valid namespace`);
  return `"${name}"`;
};

/** SQLSTATEs that mean "this role may not see that": reported like a missing table, without detail. */
const NOT_VISIBLE = new Set(['42501', '3F000', '42P01']);

export function createPostgresCrmStore(options: PostgresStoreOptions = {}): CrmStore {
  async function withCredential<T>(credential: string, run: (client: Client) => Promise<T>, notVisible: string): Promise<T> {
    let client: Client;
    try {
      client = new Client({
        connectionString: credential,
        connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
        statement_timeout: options.statementTimeoutMs ?? 5000,
        application_name: 'crm-mcp-example',
      });
    } catch {
      throw new CrmAccessError('the CRM refused the credential');
    }
    try {
      await client.connect();
      return await run(client);
    } catch (err) {
      // pg errors may echo connection details: only the SQLSTATE decides what the caller is told.
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && NOT_VISIBLE.has(code)) throw new CrmAccessError(notVisible);
      if (err instanceof CrmAccessError) throw err;
      throw new CrmAccessError(typeof code === 'string' && code.startsWith('28') ? 'the CRM refused the credential' : 'the CRM database could not be reached');
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  return {
    async query(credential, path) {
      const { namespace, table, id } = parsePath(path);
      const sql = `SELECT * FROM ${ident(namespace)}.${ident(table)}${id === undefined ? '' : ' WHERE id::text = $1'} ORDER BY id`;
      return withCredential(credential, async (c) => (await c.query<Row>(sql, id === undefined ? [] : [id])).rows, `no table "${namespace}/${table}"`);
    },
    async exportTable(credential, table) {
      // Unqualified: the role's search_path is its own schema, and no other.
      return withCredential(credential, async (c) => (await c.query<Row>(`SELECT * FROM ${ident(table)} ORDER BY id`)).rows, `no table "${table}"`);
    },
    async send(credential, message) {
      return withCredential(
        credential,
        async (c) => {
          await c.query('INSERT INTO outbox (to_address, subject, body) VALUES ($1, $2, $3)', [message.to, message.subject, message.body]);
          const { rows } = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
          return { queued: rows[0]!.n };
        },
        'no outbox',
      );
    },
    async close() {},
  };
}

const COLUMNS: Record<Table, string> = {
  contacts: 'id int PRIMARY KEY, name text NOT NULL, email text NOT NULL, company text NOT NULL',
  deals: 'id int PRIMARY KEY, title text NOT NULL, amount int NOT NULL',
  activity: 'id int PRIMARY KEY, kind text NOT NULL, note text NOT NULL',
};

/**
 * Creates (or resets) each namespace's schema, demo rows and login role `<rolePrefix><namespace>` with a
 * fresh random password, using an admin connection. Returns each role's connection string.
 */
export async function setupPostgresDemo(adminUrl: string, namespaces: string[], rolePrefix = 'crm_'): Promise<Record<string, string>> {
  const admin = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
  await admin.connect();
  const out: Record<string, string> = {};
  try {
    for (const namespace of namespaces) {
      const schema = ident(namespace);
      const role = ident(`${rolePrefix}${namespace}`);
      // Hex only: safe inside the SQL literal that CREATE ROLE requires (it takes no bind parameters).
      const password = randomBytes(24).toString('hex');
      await admin.query('BEGIN');
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await admin.query(`REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`);
      const dataset = demoDataset(namespace, []);
      for (const table of TABLES) {
        await admin.query(`DROP TABLE IF EXISTS ${schema}.${ident(table)}`);
        await admin.query(`CREATE TABLE ${schema}.${ident(table)} (${COLUMNS[table]})`);
        const rows = dataset.tables[table];
        const columns = Object.keys(rows[0]!);
        await admin.query(
          `INSERT INTO ${schema}.${ident(table)} (${columns.join(', ')}) SELECT * FROM json_populate_recordset(NULL::${schema}.${ident(table)}, $1::json)`,
          [JSON.stringify(rows)],
        );
      }
      await admin.query(`DROP TABLE IF EXISTS ${schema}.outbox`);
      await admin.query(`CREATE TABLE ${schema}.outbox (id serial PRIMARY KEY, to_address text NOT NULL, subject text NOT NULL, body text NOT NULL)`);
      const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [`${rolePrefix}${namespace}`]);
      await admin.query(`${exists.rowCount ? 'ALTER' : 'CREATE'} ROLE ${role} LOGIN PASSWORD '${password}'`);
      await admin.query(`ALTER ROLE ${role} SET search_path = ${schema}`);
      await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
      await admin.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
      await admin.query(`GRANT INSERT ON ${schema}.outbox TO ${role}`);
      await admin.query(`GRANT USAGE ON SEQUENCE ${schema}.outbox_id_seq TO ${role}`);
      await admin.query('COMMIT');
      const url = new URL(adminUrl);
      url.username = `${rolePrefix}${namespace}`;
      url.password = password;
      out[namespace] = url.toString();
    }
  } catch (err) {
    await admin.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await admin.end();
  }
  return out;
}
