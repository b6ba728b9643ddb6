import type { Clock } from '../clock';
import type { AuditLog } from './audit-log';
import type { AuditKeySet } from './audit-keys';
import type { ChainHead } from './chain';
import type { CheckpointRule } from './checkpoint';
import type { CheckpointStore } from './checkpoint-store';
import { verifyEvidence, type EvidenceResult } from './evidence';
import { isPurgeRecord, purgeProblem } from './purge';
import { SECURITY_STREAM } from './security-stream';

/**
 * A tenant's audit evidence, wherever it is kept: the stream, its checkpoints and the audit public
 * keys. The broker's API and the offline CLI build one of these over the same stores, so `GET
 * /v1/audit/verify` and `bulkhead audit verify` reach the same verdict on the same data.
 */
export interface AuditEvidence {
  /** Every tenant with a stream or a checkpoint: a stream deleted outright is still named by its checkpoints. */
  tenants(): Promise<string[]>;
  /** `known`: the tenant is in the policy, so having no records yet is not a finding. */
  verify(tenant: string, options?: { expectHead?: ChainHead; known?: boolean }): Promise<EvidenceResult>;
}

export interface AuditEvidenceDeps {
  log: Pick<AuditLog, 'verify' | 'read' | 'tenants'>;
  checkpoints: Pick<CheckpointStore, 'list' | 'tenants'>;
  keys: () => AuditKeySet;
  rule: CheckpointRule;
  clock: Clock;
}

export function createAuditEvidence(deps: AuditEvidenceDeps): AuditEvidence {
  return {
    async tenants() {
      const [streams, checkpointed] = await Promise.all([deps.log.tenants(), deps.checkpoints.tenants()]);
      return [...new Set([...streams, ...checkpointed])].sort();
    },

    async verify(tenant, options = {}) {
      const [streams, checkpoints] = await Promise.all([deps.log.tenants(), deps.checkpoints.list(tenant)]);
      const result = await verifyEvidence({
        tenant,
        log: deps.log,
        streamExists: streams.includes(tenant),
        checkpoints,
        keys: deps.keys(),
        rule: deps.rule,
        now: deps.clock.now(),
        expectHead: options.expectHead,
        known: options.known,
        readAfter: (seq) => deps.log.read(tenant, { afterSeq: seq, limit: 1 }),
      });
      return withPurges(deps, tenant, result);
    },
  };
}

/**
 * Purge records (`tenant delete --purge-audit`) live in the security stream. Verifying that stream checks
 * each one's signature (its chain and checkpoints already cover its bytes; the signature is what a
 * record rewritten with a recomputed chain cannot carry). Verifying a tenant lists the signed purges of
 * its stream, so a stream that is gone or began again at seq 1 reads as purged, by whom, after which
 * export, and not as an unexplained deletion. Reads the whole security stream (an operator's check).
 */
async function withPurges(deps: AuditEvidenceDeps, tenant: string, result: EvidenceResult): Promise<EvidenceResult> {
  if (!result.ok && tenant === SECURITY_STREAM) return result;
  const keys = deps.keys();
  const purged: NonNullable<EvidenceResult['purged']> = [];
  for (let after = 0; ; ) {
    const page = await deps.log.read(SECURITY_STREAM, { afterSeq: after, limit: 1000 });
    for (const record of page) {
      if (record.type !== 'tenant_purge') continue;
      const problem = purgeProblem(record, keys);
      if (tenant === SECURITY_STREAM) {
        if (problem) return { ...result, ok: false, broken: { seq: record.seq, problem: `purge record ${problem}`, kind: 'purge_invalid' } };
        continue;
      }
      if (!problem && isPurgeRecord(record) && record.purge.tenant === tenant) {
        const p = record.purge;
        purged.push({ security_seq: record.seq, purged_seq: p.purged_seq, purged_hash: p.purged_hash, export_sha256: p.export_sha256, operator: p.operator, at: p.at });
      }
    }
    if (page.length < 1000) break;
    after = page[page.length - 1]!.seq;
  }
  return purged.length > 0 ? { ...result, purged } : result;
}

/** Parses `SEQ:HASH` (an auditor's kept head); undefined when malformed. */
export function parseHead(text: string): ChainHead | undefined {
  const match = HEAD_PATTERN.exec(text);
  return match ? { seq: Number(match[1]), hash: match[2]! } : undefined;
}

/**
 * SEQ:HASH: a seq of 1 or more (below 10^15, so a safe integer) and a 64-hex-digit hash. The API's schema
 * uses it too, so it stays plain (no lookahead) for every JSON Schema regex dialect.
 */
export const HEAD_PATTERN = /^(0{0,14}[1-9]\d{0,14}):([0-9a-f]{64})$/;
