import type { Approval, ApprovalStore } from './approval-store';
import type { ArgumentSeal } from './sealed-arguments';

/** A pending approval as operators see it (operator API, CLI, console inbox): never sent to an agent. */
export interface ApprovalView extends Pick<Approval, 'id' | 'tenant' | 'principal' | 'session' | 'tool' | 'arguments_mac'> {
  /** The effective arguments the call would run with; null when they cannot be shown (see `arguments_unavailable`). */
  arguments: Record<string, unknown> | null;
  arguments_unavailable?: string;
  created_at: string;
  expires_at: string;
}

export type ShowApproval = (approval: Approval, now: number) => Promise<ApprovalView>;

/**
 * Opens each approval's sealed arguments for the operator. A tenant key that cannot be reached, or a
 * sealed form that does not open or does not match the hash, shows no arguments and says why, rather
 * than failing the whole list (the operator can still deny).
 */
export function createApprovalView(deps: { approvals: Pick<ApprovalStore, 'sealedArguments'>; seal: Pick<ArgumentSeal, 'open'> }): ShowApproval {
  return async (a, now) => {
    let args: Record<string, unknown> | null = null;
    let unavailable: string | undefined;
    try {
      const sealed = await deps.approvals.sealedArguments(a.id, now);
      if (sealed === null) unavailable = 'not kept for this approval';
      else args = await deps.seal.open(a, sealed);
    } catch {
      // The cause may name key material or upstream detail: the operator is told only that it failed.
      unavailable = "the tenant's key could not open them";
    }
    return {
      id: a.id,
      tenant: a.tenant,
      principal: a.principal,
      session: a.session,
      tool: a.tool,
      arguments_mac: a.arguments_mac,
      arguments: args,
      ...(unavailable === undefined ? {} : { arguments_unavailable: unavailable }),
      created_at: new Date(a.created_at).toISOString(),
      expires_at: new Date(a.expires_at).toISOString(),
    };
  };
}
