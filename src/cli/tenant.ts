import { MASTER_KEK_ID } from '../crypto/key-encryption-key';
import { idSchema } from '../policy/schema';
import { callBroker } from './http-client';
import { operatorOptions, operatorToken } from './operator';
import { parseVerb, stateOptions } from './options';
import { openTenantStore } from './tenant-store';
import { UsageError } from './usage-error';

export const TENANT_HELP = `Usage: bulkhead tenant status T [--url URL]
       bulkhead tenant shred T --yes --config FILE [--data-dir DIR]

  status  the tenant as the broker sees it now (GET /v1/tenants/T): revoked, live sessions, quota use,
          and budget use per window (used, limit, resets_at), as JSON.

  shred   crypto-shreds the tenant's sealed data at rest. With an external root (tenants.T.encryption:
          vault_transit or aws_kms) it first destroys that root: the transit key is deleted, the KMS key
          disabled and scheduled for deletion (7 days, AWS's minimum). From then on no copy of the
          tenant's data, a restored backup of the whole data dir included, can be opened; other tenants
          are not touched. Then the tenant's data key and secrets files are deleted. With the master key
          as root (the default), only the files are deleted: a backup that holds them and master.key
          still opens, so give a tenant an external root if its shred must survive backups.
          If the root cannot be destroyed (the broker's identity may not), nothing local is deleted
          and the command says what to do; exit 1. Without --yes it only says what it would do (exit 2).
          A running broker stops using the tenant's data key at once (the key file is gone) and, for a
          root disabled elsewhere, within broker.data_key_cache (default 60s).`;

export async function tenant(argv: string[]): Promise<number> {
  const [action, id, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    process.stdout.write(TENANT_HELP + '\n');
    return action === undefined ? 2 : 0;
  }
  if (action === 'status') return status(id, rest);
  if (action !== 'shred') throw new UsageError(`bulkhead tenant: unknown action "${action}" (see bulkhead tenant --help)`);
  const { values } = parseVerb('tenant shred', rest, { ...stateOptions, yes: { type: 'boolean' } });
  if (values.help || id === '--help') {
    process.stdout.write(TENANT_HELP + '\n');
    return 0;
  }
  if (!id || !idSchema.safeParse(id).success) throw new UsageError('bulkhead tenant shred: name the tenant: bulkhead tenant shred T --yes');
  const opened = await openTenantStore(values, { create: false });
  try {
    const kek = opened.kekOf(id);
    const names = await opened.store.list(id);
    const root = kek.id === MASTER_KEK_ID ? 'the master key (backups that hold the key file stay readable)' : kek.id;
    if (!values.yes) {
      throw new UsageError(`bulkhead tenant shred: this would ${kek.destroy ? `destroy ${kek.id}, then ` : ''}delete tenant "${id}"'s data key and its ${names.length} secret(s) in ${opened.dataDir} (root: ${root}). Add --yes to do it.`);
    }
    if (kek.destroy) {
      try {
        process.stdout.write(`${await kek.destroy()}\n`);
      } catch (err) {
        process.stderr.write(
          `bulkhead tenant shred: could not destroy ${kek.id} (${(err as Error).message}); nothing was deleted. Disable or delete that key in its KMS (the tenant controls it), then run this again.\n`,
        );
        return 1;
      }
    }
    await opened.store.shredTenant(id);
    process.stdout.write(`deleted tenant "${id}"'s data key and ${names.length} secret(s) from ${opened.dataDir}\n`);
    process.stdout.write(kek.destroy ? `shredded: no copy of tenant "${id}"'s sealed data can be opened any more, backups included\n` : `shredded in this data dir; root: ${root}\n`);
    return 0;
  } finally {
    await opened.close();
  }
}

async function status(id: string | undefined, argv: string[]): Promise<number> {
  const { values } = parseVerb('tenant status', argv, operatorOptions);
  if (values.help || id === '--help') {
    process.stdout.write(TENANT_HELP + '\n');
    return 0;
  }
  if (!id || !idSchema.safeParse(id).success) throw new UsageError('bulkhead tenant status: name the tenant: bulkhead tenant status T');
  const answer = await callBroker(values.url, `/v1/tenants/${id}`, { method: 'GET', bearer: operatorToken(values) });
  process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
  return 0;
}
