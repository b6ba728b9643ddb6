import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AuditLog } from '../audit/audit-log';
import { createAuditEvidence, type AuditEvidence } from '../audit/audit-evidence';
import { publishedFrom, signerFrom, type AuditKeySet, type AuditSigner } from '../audit/audit-keys';
import type { CheckpointRule } from '../audit/checkpoint';
import type { CheckpointStore } from '../audit/checkpoint-store';
import { SECURITY_STREAM } from '../audit/security-stream';
import { createFileAuditLog } from '../audit/file-audit-log';
import { CHECKPOINT_DIR, createFileCheckpointStore } from '../audit/file-checkpoint-store';
import { systemClock } from '../clock';
import { loadExistingMasterKey } from '../crypto/master-key';
import { AUDIT_KEYS_FILE } from '../state/embedded-state';
import { createFileKeyStorage, createSealedKeyStore, type SealedKeyStorage } from '../tokens/key-store';
import { loadConfig } from './load-config';
import { openSharedAuditStores } from './shared-audit';
import { UsageError } from './usage-error';

/**
 * What the offline `bulkhead audit` verbs read: the streams, their checkpoints and the audit keys, from
 * the data dir (embedded) or PostgreSQL (scaled out), with no broker running. The audit keys come from
 * the sealed ring (opening it proves each public key belongs to its sealed private key, so needs the
 * master key), or from `--keys FILE`: the key set an auditor fetched from the broker and pinned.
 */
export interface AuditSources {
  log: AuditLog;
  checkpoints: CheckpointStore;
  evidence: AuditEvidence;
  keys: AuditKeySet;
  /** The audit key ring's current key; only for verbs that sign (export). */
  signer(): AuditSigner;
  issuer: string;
  /** Whether --config names the tenant (no records yet is then not a finding). */
  known(tenant: string): boolean;
  where: string;
  close(): Promise<void>;
}

export async function openAuditSources(values: { config?: string; 'data-dir'?: string; keys?: string }, options: { sign?: boolean } = {}): Promise<AuditSources> {
  const { policy, dataDir } = loadConfig(values);
  const shared = await openSharedAuditStores(policy);
  try {
    if (!shared && !isDirectory(dataDir)) throw new Error(`data dir ${dataDir} does not exist: there is no audit to read`);
    const log = shared?.log ?? createFileAuditLog({ dir: join(dataDir, 'audit'), clock: systemClock });
    const checkpoints = shared?.checkpoints ?? createFileCheckpointStore(join(dataDir, CHECKPOINT_DIR));
    const storage: SealedKeyStorage = shared?.auditKeys ?? createFileKeyStorage(dataDir, AUDIT_KEYS_FILE);
    // The sealed ring is opened when it is needed: for signing, or when no pinned keys were given.
    const ring = values.keys && !options.sign ? null : await createSealedKeyStore(await loadExistingMasterKey(dataDir), storage, 'audit-key').load();
    const keys = values.keys ? readKeySet(values.keys) : ring ? publishedFrom(ring) : { keys: [] };
    const rule: CheckpointRule = { every: policy?.broker.audit.checkpoint_every ?? 1000, intervalMs: policy?.broker.audit.checkpoint_interval ?? 60_000 };
    return {
      log,
      checkpoints,
      keys,
      evidence: createAuditEvidence({ log, checkpoints, keys: () => keys, rule, clock: systemClock }),
      signer: () => {
        if (!ring) throw new Error('there is no audit key ring to sign with');
        return signerFrom(ring);
      },
      issuer: policy?.broker.issuer ?? 'http://127.0.0.1:8700',
      // The security stream belongs to every broker, so having no records yet is no finding either.
      known: (tenant) => tenant === SECURITY_STREAM || (policy !== null && Object.hasOwn(policy.tenants, tenant)),
      where: shared?.where ?? join(dataDir, 'audit'),
      close: async () => {
        await log.close();
        await shared?.close();
      },
    };
  } catch (err) {
    await shared?.close();
    throw err;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A key set as /.well-known/bulkhead-audit-keys.json serves it. */
export function readKeySet(file: string): AuditKeySet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new UsageError(`${file}: cannot read an audit key set (JSON with "keys")`);
  }
  if (!Array.isArray((parsed as AuditKeySet)?.keys)) throw new UsageError(`${file}: an audit key set needs a "keys" array`);
  return parsed as AuditKeySet;
}

/** An ISO 8601 time option (--from, --to) in epoch ms. */
export function isoOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(ms)) throw new UsageError(`bulkhead audit: --${name} must be an ISO 8601 time, e.g. 2025-01-31T00:00:00Z`);
  return ms;
}
