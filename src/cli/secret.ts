import { idSchema } from '../policy/schema';
import { parseVerb, stateOptions } from './options';
import { report } from './output';
import { openTenantStore, type OpenedStore } from './tenant-store';
import { UsageError } from './usage-error';

export const SECRET_HELP = `Usage: bulkhead secret set --tenant T --name N [--config FILE] [--data-dir DIR] < value
       bulkhead secret list --tenant T [--config FILE] [--data-dir DIR]
       bulkhead secret delete --tenant T --name N [--config FILE] [--data-dir DIR]
       bulkhead secret shred --tenant T --yes [--config FILE] [--data-dir DIR]

The embedded local store: each tenant's secrets are encrypted (AES-256-GCM) under that tenant's own data
key, which is wrapped by the tenant's root: the master key, or the tenant's own Vault transit or AWS KMS
key (tenants.T.encryption in --config). Policy refers to a secret as { source: local, name: N }.
  set     stores a secret for a tenant of --config (without --config: of the demo policy). The value is
          read from standard input (one trailing newline is dropped), never from the command line, so it
          stays out of shell history and process listings.
  list    the tenant's secret names, one per line; never the values
  delete  removes one secret (exit code 1 if there was none)
  shred   deletes the tenant's data key file: every copy of its secrets file becomes unreadable. A backup
          that holds the key file too still opens with its root: with the master key as root (the
          default) shred does not survive backups; see bulkhead tenant shred for one that does.
          Without --yes it only says what it would do (exit code 2).
A running broker sees each change on its next call (after cache_ttl, for a credential that sets one):
after a delete or shred, the calls that need those secrets are answered 503 upstream_unavailable.`;

type Ids = { tenant?: string; name?: string };

export async function secret(argv: string[], stdin: NodeJS.ReadableStream = process.stdin): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') return showHelp();
  if (action === 'set') return set(rest, stdin);
  if (action === 'list') return list(rest);
  if (action === 'delete') return remove(rest);
  if (action === 'shred') return shred(rest);
  throw new UsageError(`bulkhead secret: unknown action "${action}" (see bulkhead secret --help)`);
}

async function set(argv: string[], stdin: NodeJS.ReadableStream): Promise<number> {
  const { values } = parseVerb('secret set', argv, { ...stateOptions, tenant: { type: 'string' }, name: { type: 'string' } });
  if (values.help) return showHelp();
  const { tenant, name } = checkIds('set', values, ['tenant', 'name']);
  return withStore(values, { create: true, knownTenant: { verb: 'secret set', tenant: tenant! } }, async (opened) => {
    const value = (await readAll(stdin)).replace(/\r?\n$/, '');
    if (!value) throw new UsageError('bulkhead secret set: no value on standard input');
    await opened.store.set(tenant!, name!, value);
    report(values.json, { stored: { tenant, name }, data_dir: opened.dataDir }, `stored secret "${name}" for tenant "${tenant}" in ${opened.dataDir}`);
    return 0;
  });
}

async function list(argv: string[]): Promise<number> {
  const { values } = parseVerb('secret list', argv, { ...stateOptions, tenant: { type: 'string' } });
  if (values.help) return showHelp();
  const { tenant } = checkIds('list', values, ['tenant']);
  return withStore(values, { create: false }, async ({ store, dataDir }) => {
    const names = await store.list(tenant!);
    if (names.length === 0 && !values.json) process.stderr.write(`tenant "${tenant}" has no secrets in ${dataDir}\n`);
    if (values.json || names.length > 0) report(values.json, { tenant, names, data_dir: dataDir }, names.join('\n'));
    return 0;
  });
}

async function remove(argv: string[]): Promise<number> {
  const { values } = parseVerb('secret delete', argv, { ...stateOptions, tenant: { type: 'string' }, name: { type: 'string' } });
  if (values.help) return showHelp();
  const { tenant, name } = checkIds('delete', values, ['tenant', 'name']);
  return withStore(values, { create: false }, async ({ store, dataDir }) => {
    if (!(await store.delete(tenant!, name!))) throw new Error(`tenant "${tenant}" has no secret "${name}" in ${dataDir}`);
    report(values.json, { deleted: { tenant, name }, data_dir: dataDir }, `deleted secret "${name}" of tenant "${tenant}" from ${dataDir}`);
    return 0;
  });
}

async function shred(argv: string[]): Promise<number> {
  const { values } = parseVerb('secret shred', argv, { ...stateOptions, tenant: { type: 'string' }, yes: { type: 'boolean' } });
  if (values.help) return showHelp();
  const { tenant } = checkIds('shred', values, ['tenant']);
  return withStore(values, { create: false }, async ({ store, dataDir }) => {
    const names = await store.list(tenant!);
    const what = `tenant "${tenant}"'s data key in ${dataDir}: its ${names.length} secret(s)${names.length ? ` (${names.join(', ')})` : ''}`;
    if (!values.yes) throw new UsageError(`bulkhead secret shred: this would delete ${what} could never be read again from this data dir. Add --yes to do it.`);
    await store.shredTenant(tenant!);
    report(values.json, { shredded: tenant, secrets: names, data_dir: dataDir }, `deleted ${what} can no longer be read from this data dir`);
    return 0;
  });
}

/** --tenant and --name are policy ids; a bad one is a usage error here rather than a failure in the store. */
function checkIds(action: string, values: Ids, fields: Array<keyof Ids>): Ids {
  for (const field of fields) {
    const value = values[field];
    if (!value) throw new UsageError(`bulkhead secret ${action}: --${field} is required`);
    const parsed = idSchema.safeParse(value);
    if (!parsed.success) throw new UsageError(`bulkhead secret ${action}: --${field} ${parsed.error.issues[0]?.message}`);
    // The store also refuses ".." (it would read as a path); say so here, as a usage error, not a failure.
    if (value.includes('..')) throw new UsageError(`bulkhead secret ${action}: --${field} must not contain ".."`);
  }
  return values;
}

async function withStore(values: { config?: string; 'data-dir'?: string }, options: Parameters<typeof openTenantStore>[1], work: (opened: OpenedStore) => Promise<number>): Promise<number> {
  const opened = await openTenantStore(values, options);
  try {
    return await work(opened);
  } finally {
    await opened.close();
  }
}

function showHelp(): number {
  process.stdout.write(SECRET_HELP + '\n');
  return 0;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks).toString('utf8');
}
