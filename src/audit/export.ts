import { BrokerError } from '../errors';
import type { AuditLog, AuditRecord } from './audit-log';
import type { AuditKeySet, AuditSigner } from './audit-keys';
import type { AuditEvidence } from './audit-evidence';
import { buildBundle, type AuditBundle } from './bundle';
import { checkpointProblem, type Checkpoint } from './checkpoint';
import type { CheckpointStore } from './checkpoint-store';

/**
 * Exports one tenant's trail as a bundle, for the API route and the CLI alike. The stream must verify
 * first: a bundle vouches for what it carries, so a broken stream is reported, not packaged. Only this
 * tenant's stream is read, and the bundle builder refuses any record naming another tenant.
 */
export interface ExportInputs {
  tenant: string;
  from?: number;
  to?: number;
  issuer: string;
  now: number;
  log: Pick<AuditLog, 'read'>;
  checkpoints: Pick<CheckpointStore, 'list'>;
  evidence: AuditEvidence;
  /** The tenant is in the policy (an export of a tenant with no records yet is an empty bundle). */
  known?: boolean;
  keys: AuditKeySet;
  signer: AuditSigner;
}

const PAGE = 1000;

export async function exportTenantBundle(inputs: ExportInputs): Promise<AuditBundle> {
  const { tenant } = inputs;
  const verdict = await inputs.evidence.verify(tenant, { known: inputs.known });
  if (!verdict.ok) throw new BrokerError('conflict', `tenant ${tenant}'s audit does not verify (${verdict.broken?.kind}: ${verdict.broken?.problem}); nothing exported`);
  // A bundle is one contiguous chain, so it cannot span a sealed break: it starts at the newest seal.
  const seal = verdict.sealed?.at(-1);
  if (seal && (inputs.from === undefined || inputs.from < Date.parse(seal.ts))) {
    throw new BrokerError('conflict', `tenant ${tenant}'s stream has a sealed break (at record ${seal.break_seq}, sealed as record ${seal.seal_seq} at ${seal.ts}): a bundle cannot span it; export from ${seal.ts} on`);
  }
  const records: AuditRecord[] = [];
  for (let after = seal ? seal.seal_seq - 1 : 0; ; ) {
    const page = await inputs.log.read(tenant, { afterSeq: after, limit: PAGE });
    records.push(...page);
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.seq;
  }
  const checkpoints = (await inputs.checkpoints.list(tenant)).filter((c): c is Checkpoint => checkpointProblem(c, tenant, inputs.keys) === null);
  return buildBundle({ tenant, issuer: inputs.issuer, now: inputs.now, from: inputs.from, to: inputs.to, records, checkpoints, keys: inputs.keys, signer: inputs.signer });
}
