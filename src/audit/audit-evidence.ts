import type { Clock } from '../clock';
import type { AuditLog } from './audit-log';
import type { AuditKeySet } from './audit-keys';
import type { ChainHead } from './chain';
import type { CheckpointRule } from './checkpoint';
import type { CheckpointStore } from './checkpoint-store';
import { verifyEvidence, type EvidenceResult } from './evidence';

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
      return verifyEvidence({
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
    },
  };
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
