import { randomUUID } from 'node:crypto';
import { MAX_LISTED_APPROVALS, type Approval, type ApprovalStore } from './approval-store';

/**
 * The embedded approval store, for one process. An approval is bound to one exact call (tenant,
 * session, tool, arguments hash) and moves one way: pending → approved | denied, approved → used, once.
 * Ids are random so one tenant cannot guess or enumerate another's approvals. Approvals are not durable:
 * a restart forgets them, which fails closed (the call asks for approval again). Sealed arguments are
 * held apart and deleted when the approval is decided, and once it has expired (on the next read or prune).
 */

/** Decided, used and expired approvals stay readable this long after they expire, then are dropped. */
const RETAIN_AFTER_EXPIRY_MS = 60 * 60_000;
const PRUNE_INTERVAL_MS = 60_000;

export interface MemoryApprovalStoreOptions {
  /** Id generator; defaults to crypto.randomUUID. */
  random?: () => string;
}

export function createMemoryApprovalStore(options: MemoryApprovalStoreOptions = {}): ApprovalStore & { close(): Promise<void> } {
  const newId = options.random ?? randomUUID;
  const byId = new Map<string, Approval>();
  const sealedById = new Map<string, string>();
  // The open (pending or approved) approval for each exact call; decided-denied and used ones leave it.
  const openByCall = new Map<string, string>();
  let lastPrune = -Infinity;

  function openFor(tenant: string, session: string, tool: string, sha: string, now: number): Approval | null {
    const key = callKey(tenant, session, tool, sha);
    const id = openByCall.get(key);
    const approval = id === undefined ? undefined : byId.get(id);
    if (!approval || (approval.status !== 'pending' && approval.status !== 'approved')) return null;
    if (approval.expires_at <= now) {
      openByCall.delete(key);
      return null;
    }
    return approval;
  }

  function prune(now: number): void {
    if (now - lastPrune < PRUNE_INTERVAL_MS) return;
    lastPrune = now;
    for (const [id, a] of byId) {
      if (a.expires_at <= now) sealedById.delete(id);
      if (a.expires_at + RETAIN_AFTER_EXPIRY_MS > now) continue;
      byId.delete(id);
      const key = callKey(a.tenant, a.session, a.tool, a.arguments_mac);
      if (openByCall.get(key) === id) openByCall.delete(key);
    }
  }

  return {
    async request(input, now) {
      prune(now);
      const existing = openFor(input.tenant, input.session, input.tool, input.arguments_mac, now);
      if (existing) return { ...existing };
      const id = newId();
      if (byId.has(id)) throw new Error('approval id generator returned a duplicate');
      const approval: Approval = {
        id,
        tenant: input.tenant,
        principal: input.principal,
        session: input.session,
        tool: input.tool,
        arguments_mac: input.arguments_mac,
        status: 'pending',
        created_at: now,
        expires_at: input.expires_at,
      };
      byId.set(id, approval);
      if (input.sealed_arguments !== undefined) sealedById.set(id, input.sealed_arguments);
      openByCall.set(callKey(input.tenant, input.session, input.tool, input.arguments_mac), id);
      return { ...approval };
    },

    async get(id) {
      const approval = byId.get(id);
      return approval ? { ...approval } : null;
    },

    async sealedArguments(id, now) {
      const approval = byId.get(id);
      if (!approval || approval.status !== 'pending' || approval.expires_at <= now) {
        sealedById.delete(id);
        return null;
      }
      return sealedById.get(id) ?? null;
    },

    async decide(id, decision, operator, now) {
      const approval = byId.get(id);
      if (!approval || approval.status !== 'pending' || approval.expires_at <= now) return null;
      sealedById.delete(id);
      approval.status = decision;
      approval.decided_by = operator;
      if (decision === 'denied') {
        const key = callKey(approval.tenant, approval.session, approval.tool, approval.arguments_mac);
        if (openByCall.get(key) === id) openByCall.delete(key);
      }
      return { ...approval };
    },

    async consume(tenant, session, tool, argumentsMac, now) {
      const approval = openFor(tenant, session, tool, argumentsMac, now);
      if (!approval || approval.status !== 'approved') return null;
      // Check and transition happen with no await between them, so two concurrent calls cannot both use it.
      approval.status = 'used';
      openByCall.delete(callKey(tenant, session, tool, argumentsMac));
      return { ...approval };
    },

    async listPending(tenant, now) {
      prune(now);
      const pending: Approval[] = [];
      for (const a of byId.values()) {
        if (a.tenant === tenant && a.status === 'pending' && a.expires_at > now) pending.push({ ...a });
      }
      // Map order is creation order already, unless a caller's clock went backwards; sort is stable.
      return pending.sort((x, y) => x.created_at - y.created_at).slice(0, MAX_LISTED_APPROVALS);
    },

    async listTenant(tenant) {
      return [...byId.values()].filter((a) => a.tenant === tenant).map((a) => ({ ...a })).sort((x, y) => x.created_at - y.created_at);
    },

    async forgetTenant(tenant) {
      for (const [id, a] of byId) {
        if (a.tenant !== tenant) continue;
        byId.delete(id);
        sealedById.delete(id);
        const key = callKey(a.tenant, a.session, a.tool, a.arguments_mac);
        if (openByCall.get(key) === id) openByCall.delete(key);
      }
    },

    async close() {
      byId.clear();
      sealedById.clear();
      openByCall.clear();
    },
  };
}

/** JSON of the tuple: unambiguous whatever characters the parts contain. */
function callKey(tenant: string, session: string, tool: string, sha: string): string {
  return JSON.stringify([tenant, session, tool, sha]);
}
