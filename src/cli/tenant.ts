import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createFileArgumentKeyStorage } from '../argument-keys/file-argument-key-storage';
import { RootNotDestroyed, shredTenantKeys } from '../compose/tenant-shred';
import { replaceFile } from '../storage/atomic-file';
import type { TenantDeleteResult } from '../tenants/tenant-delete';
import type { TenantExport } from '../tenants/tenant-export';
import { MASTER_KEK_ID } from '../crypto/key-encryption-key';
import { idSchema, type Policy } from '../policy/schema';
import { createArgumentKeyTable } from '../state/postgres/argument-key-table';
import { createPgPool } from '../state/postgres/pool';
import { assertSchema } from '../state/postgres/schema';
import { describeUrl } from '../state/safe-url';
import { callBroker } from './http-client';
import { operatorOptions, operatorToken } from './operator';
import { parseVerb, stateOptions } from './options';
import { openTenantStore } from './tenant-store';
import { UsageError } from './usage-error';

export const TENANT_HELP = `Usage: bulkhead tenant status T [--url URL]
       bulkhead tenant export T --out DIR [--include-secrets] [--url URL]
       bulkhead tenant delete T --yes [--purge-audit] [--json] [--url URL]
       bulkhead tenant shred T --yes --config FILE [--data-dir DIR]

  status  the tenant as the broker sees it now (GET /v1/tenants/T): revoked, live sessions, quota use,
          and budget use per window (used, limit, resets_at), as JSON.

  shred   crypto-shreds the tenant's sealed data at rest. With an external root (tenants.T.encryption:
          vault_transit or aws_kms) it first destroys that root: the transit key is deleted, the KMS key
          disabled and scheduled for deletion (7 days, AWS's minimum). From then on no copy of the
          tenant's data, a restored backup of the whole data dir included, can be opened; other tenants
          are not touched. Then the tenant's argument key (the key of arguments_mac in its audit and
          approvals) is replaced by a tombstone, in the data dir and, scaled out (broker.state), in
          PostgreSQL: from then on every call of the tenant is refused tenant_shredded (403), by every
          replica, after a restart too, and its recorded arguments_mac values can no longer be matched
          against anything. Then the tenant's data key and secrets files are deleted. With the master key
          as root (the default), only the files are deleted: a backup that holds them and master.key
          still opens, so give a tenant an external root if its shred must survive backups.
          If the root cannot be destroyed (the broker's identity may not), nothing local is deleted
          and the command says what to do; exit 1. Without --yes it only says what it would do (exit 2).
          The argument key is tombstoned too (data dir, and PostgreSQL when scaled out): the tenant's
          calls are refused tenant_shredded. A running broker stops using the tenant's data key at once
          (the key file is gone), and its argument key (and, for a root disabled elsewhere, both) within
          broker.data_key_cache (default 60s).

  export  the tenant's data, from the running broker (POST /v1/tenants/T/export), into DIR (created,
          mode 0700): tenant.json (policy entry with principals' secret hashes redacted, OAuth clients
          bound to it, secret names, live and quarantined sessions, revocation state and history,
          approvals with a pending one's arguments opened under the tenant's key as the approval inbox
          shows them, quota and budget use) and audit-bundle.json (the tenant's whole audit trail as a
          verifiable bundle: bulkhead audit verify --bundle DIR/audit-bundle.json --keys KEYS). Nothing
          of any other tenant. --include-secrets also writes secrets.json (mode 0600) with the local
          secret values; the export is recorded in the tenant's audit stream first, and says whether
          values were included.

  delete  deletes the tenant on the running broker (POST /v1/tenants/T/delete), in order, one step at
          a time: revoke (tenant revoked on every replica, calls in flight killed, their upstream leases
          revoked), shred_keys (as shred above: the external root destroyed, then data key and local
          secrets deleted), sessions (live sessions, quarantines, calls), approvals, quotas, budgets,
          and a final tombstone record in the tenant's audit stream, signed by a checkpoint. Each
          step is journaled in that stream when done: if the broker dies mid-delete, or a step fails
          (an upstream is down), run the same command again and it resumes where it stopped. Running
          it after a finished delete runs every step again (finding nothing) and adds a new tombstone.
          Kept: the audit stream (retention) and the tenant revocation (no token of the tenant works
          while the policy still names it); take the tenant out of the policy file afterwards.
          Prints each step (--json: the whole report). Without --yes it only says what it would do
          (exit 2).
          --purge-audit also removes the tenant's audit stream and its checkpoints (files in the data
          dir, or rows in PostgreSQL), after the tombstone. It needs an export first: refused
          export_required (409) unless the stream's last tenant export covers every record but the
          delete's own journal (export again if anything was recorded since). Before removing anything
          it writes a record signed with the audit key to the security stream (_security): tenant,
          operator, the purged stream's last seq and hash, the export's audit_sha256; audit verify
          checks its signature and lists it under the tenant ("purged"). Interrupted, run it again.`;

export async function tenant(argv: string[]): Promise<number> {
  const [action, id, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    process.stdout.write(TENANT_HELP + '\n');
    return action === undefined ? 2 : 0;
  }
  if (action === 'status') return status(id, rest);
  if (action === 'export') return exportTenantData(id, rest);
  if (action === 'delete') return deleteTenantData(id, rest);
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
      throw new UsageError(
        `bulkhead tenant shred: this would ${kek.destroy ? `destroy ${kek.id}, then ` : ''}shred tenant "${id}"'s argument key (its calls are refused from then on) and delete its data key and its ${names.length} secret(s) in ${opened.dataDir} (root: ${root}). Add --yes to do it.`,
      );
    }
    let outcome;
    const argumentKeys = await openArgumentKeyStorages(opened.policy, opened.dataDir);
    try {
      outcome = await shredTenantKeys({ store: opened.store, keks: opened.kekOf, argumentKeys: argumentKeys.storages }, id);
    } catch (err) {
      if (err instanceof RootNotDestroyed) {
        process.stderr.write(`bulkhead tenant shred: ${err.message}. Disable or delete that key in its KMS (the tenant controls it), then run this again.\n`);
      } else {
        process.stderr.write(`bulkhead tenant shred: could not shred tenant "${id}"'s argument key (${(err as Error).message}); its secrets were not deleted. Run this again once that is reachable.\n`);
      }
      return 1;
    } finally {
      await argumentKeys.close();
    }
    if (outcome.root_destroyed) process.stdout.write(`${outcome.root_destroyed}\n`);
    for (const where of outcome.argument_key_shredded) process.stdout.write(`shredded tenant "${id}"'s argument key in ${where}: its calls are refused tenant_shredded from now on\n`);
    process.stdout.write(`deleted tenant "${id}"'s data key and ${outcome.secrets_deleted} secret(s) from ${opened.dataDir}\n`);
    process.stdout.write(outcome.root_destroyed ? `shredded: no copy of tenant "${id}"'s sealed data can be opened any more, backups included\n` : `shredded in this data dir; root: ${root}\n`);
    return 0;
  } finally {
    await opened.close();
  }
}

/** Where brokers read the tenant's argument key: the data dir, and PostgreSQL when scaled out. */
async function openArgumentKeyStorages(policy: Policy, dataDir: string) {
  const file = Object.assign(createFileArgumentKeyStorage(dataDir), { where: dataDir });
  const url = policy.broker.state.postgres_url;
  if (!url) return { storages: [file], close: async () => undefined };
  const pool = createPgPool({ url, timeoutMs: 30_000, max: 1 });
  const table = createArgumentKeyTable(pool);
  const shared = {
    where: `PostgreSQL at ${describeUrl(url)}`,
    async shred(tenant: string, at: Date) {
      try {
        await assertSchema(pool);
        await table.shred(tenant, at);
      } catch (err) {
        throw new Error(`PostgreSQL at ${describeUrl(url)}: ${(err as Error).message}`, { cause: err });
      }
    },
  };
  return { storages: [shared, file], close: () => pool.end().catch(() => undefined) };
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

async function exportTenantData(id: string | undefined, argv: string[]): Promise<number> {
  const { values } = parseVerb('tenant export', argv, { ...operatorOptions, out: { type: 'string' }, 'include-secrets': { type: 'boolean' } });
  if (values.help || id === '--help') {
    process.stdout.write(TENANT_HELP + '\n');
    return 0;
  }
  if (!id || !idSchema.safeParse(id).success) throw new UsageError('bulkhead tenant export: name the tenant: bulkhead tenant export T --out DIR');
  if (!values.out) throw new UsageError('bulkhead tenant export: --out DIR is required');
  const includeSecrets = values['include-secrets'] === true;
  const exported = (await callBroker(values.url, `/v1/tenants/${id}/export`, { method: 'POST', body: includeSecrets ? { include_secrets: true } : {}, bearer: operatorToken(values), timeoutMs: 60_000 })) as TenantExport;
  await mkdir(values.out, { recursive: true, mode: 0o700 });
  const { audit, secrets, ...rest } = exported;
  const written = ['tenant.json', 'audit-bundle.json'];
  await replaceFile(join(values.out, 'tenant.json'), JSON.stringify({ ...rest, secrets: { names: secrets.names } }, null, 2) + '\n');
  await replaceFile(join(values.out, 'audit-bundle.json'), JSON.stringify(audit, null, 2) + '\n');
  if (secrets.values) {
    await replaceFile(join(values.out, 'secrets.json'), JSON.stringify(secrets.values, null, 2) + '\n', 0o600);
    written.push('secrets.json');
  }
  process.stdout.write(
    `${values.out}: tenant ${id}: ${written.join(', ')} (${secrets.names.length} secret name(s)${secrets.values ? ' with values' : ''}, ${exported.sessions.live.length} live session(s), ${exported.approvals.length} approval(s), audit records ${audit.manifest.records.first_seq}..${audit.manifest.records.last_seq}, audit_sha256 ${exported.audit_sha256})\n`,
  );
  return 0;
}

async function deleteTenantData(id: string | undefined, argv: string[]): Promise<number> {
  const { values } = parseVerb('tenant delete', argv, { ...operatorOptions, yes: { type: 'boolean' }, json: { type: 'boolean' }, 'purge-audit': { type: 'boolean' } });
  if (values.help || id === '--help') {
    process.stdout.write(TENANT_HELP + '\n');
    return 0;
  }
  if (!id || !idSchema.safeParse(id).success) throw new UsageError('bulkhead tenant delete: name the tenant: bulkhead tenant delete T --yes');
  if (!values.yes) {
    throw new UsageError(
      `bulkhead tenant delete: this would revoke tenant "${id}", shred its keys and delete its secrets, sessions, approvals, quota and budget state on the broker (its audit stream is kept, with a tombstone). Export it first (bulkhead tenant export ${id} --out DIR). Add --yes to do it.`,
    );
  }
  const result = (await callBroker(values.url, `/v1/tenants/${id}/delete`, { method: 'POST', body: values['purge-audit'] ? { confirm: id, purge_audit: true } : { confirm: id }, bearer: operatorToken(values), timeoutMs: 120_000 })) as TenantDeleteResult;
  if (values.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  }
  for (const step of result.steps) process.stdout.write(`${step.step.padEnd(11)} ${step.status.padEnd(8)} ${step.detail}\n`);
  process.stdout.write(`tenant "${id}" deleted${result.resumed ? ' (resumed an interrupted delete)' : ''}; tombstone: audit seq ${result.tombstone.seq}${result.purge ? `; audit stream purged (signed record: _security seq ${result.purge.record.seq})` : ''}. Kept: ${result.retained.join('; ')}\n`);
  return 0;
}
