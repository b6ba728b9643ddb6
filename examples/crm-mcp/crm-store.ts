import { timingSafeEqual } from 'node:crypto';

/**
 * The example CRM's storage, opened BY the credential Bulkhead resolved for the call — never by a
 * tenant name the server was told. A credential opens exactly one namespace (acme's credential opens
 * acme's tables), the way a per-tenant database role does; an unknown credential opens nothing.
 *
 * Two implementations: this in-memory one (the demo and the e2e tests) and PostgreSQL
 * (postgres-store.ts), where the credential is a per-tenant role's connection string.
 */

export type Row = Record<string, string | number>;
export const TABLES = ['contacts', 'deals', 'activity'] as const;
export type Table = (typeof TABLES)[number];

export interface OutboxMessage {
  to: string;
  subject: string;
  body: string;
}

export interface CrmStore {
  /** `path` is `<namespace>/<table>[/<id>]`; a namespace the credential does not open reads as missing. */
  query(credential: string, path: string): Promise<Row[]>;
  exportTable(credential: string, table: Table): Promise<Row[]>;
  send(credential: string, message: OutboxMessage): Promise<{ queued: number }>;
  close(): Promise<void>;
}

/** Raised for anything the store refuses; its message never contains the credential. */
export class CrmAccessError extends Error {
  override readonly name = 'CrmAccessError';
}

export interface Dataset {
  namespace: string;
  /** Every credential value that opens this dataset (e.g. a CRM secret and a mail secret). */
  credentials: string[];
  tables: Record<Table, Row[]>;
}

export interface MemoryCrmStore extends CrmStore {
  /** Messages queued per namespace, for tests and the demo. */
  outbox(namespace: string): OutboxMessage[];
  /** How many times each dataset was opened, per namespace (what the credentials actually reached). */
  opened(namespace: string): number;
}

export function parsePath(path: string): { namespace: string; table: Table; id?: string } {
  const [namespace, table, id, ...rest] = path.split('/');
  if (!namespace || !table || rest.length > 0 || !(TABLES as readonly string[]).includes(table)) {
    throw new CrmAccessError(`path must be <namespace>/<table>[/<id>] with table one of ${TABLES.join(', ')}`);
  }
  return { namespace, table: table as Table, id: id || undefined };
}

export function createMemoryCrmStore(datasets: Dataset[]): MemoryCrmStore {
  const outboxes = new Map<string, OutboxMessage[]>();
  const opens = new Map<string, number>();

  /** Like a database login: compares the presented secret with each known one, in constant time. */
  function open(credential: string): Dataset {
    const presented = Buffer.from(credential, 'utf8');
    const match = datasets.find((d) => d.credentials.some((known) => {
      const expected = Buffer.from(known, 'utf8');
      return expected.length === presented.length && timingSafeEqual(expected, presented);
    }));
    if (!match) throw new CrmAccessError('the CRM refused the credential');
    opens.set(match.namespace, (opens.get(match.namespace) ?? 0) + 1);
    return match;
  }

  return {
    async query(credential, path) {
      const dataset = open(credential);
      const { namespace, table, id } = parsePath(path);
      // Another namespace is simply not visible to this credential.
      if (namespace !== dataset.namespace) throw new CrmAccessError(`no table "${namespace}/${table}"`);
      const rows = dataset.tables[table];
      return id === undefined ? rows.map((r) => ({ ...r })) : rows.filter((r) => String(r.id) === id).map((r) => ({ ...r }));
    },
    async exportTable(credential, table) {
      const dataset = open(credential);
      return dataset.tables[table].map((r) => ({ ...r }));
    },
    async send(credential, message) {
      const dataset = open(credential);
      const box = outboxes.get(dataset.namespace) ?? [];
      box.push({ ...message });
      outboxes.set(dataset.namespace, box);
      return { queued: box.length };
    },
    outbox: (namespace) => [...(outboxes.get(namespace) ?? [])],
    opened: (namespace) => opens.get(namespace) ?? 0,
    async close() {},
  };
}

/** Demo rows for one namespace; `activity` is larger than export_report's max_records of 1000. */
export function demoDataset(namespace: string, credentials: string[], activityRows = 1200): Dataset {
  const Name = namespace.charAt(0).toUpperCase() + namespace.slice(1);
  return {
    namespace,
    credentials,
    tables: {
      contacts: [1, 2, 3].map((i) => ({ id: i, name: `${Name} Contact ${i}`, email: `contact${i}@${namespace}.example`, company: `${Name} Inc.` })),
      deals: [1, 2].map((i) => ({ id: i, title: `${Name} deal ${i}`, amount: 1000 * i })),
      activity: Array.from({ length: activityRows }, (_, i) => ({ id: i + 1, kind: i % 2 ? 'call' : 'email', note: `${Name} activity ${i + 1}` })),
    },
  };
}
