import type { Harness } from './broker-harness';
import type { GatedProxy } from './gated-proxy';
import { auditEvents, callId, claimsOf, expectNoAllowAnywhere } from './isolation-assertions';

/**
 * The moves of the kill-in-flight tests (embedded and across replicas): a call whose OpenBao read is
 * held by a gated proxy, a kill while it waits, and the audit-stream checks that must hold afterwards.
 */
export const KV_READ = /^GET \/v1\/secret\/data\//;
export const DB_CREDS = /^GET \/v1\/database\/creds\//;

const argumentsFor = (token: string, tool: string) => (tool === 'query_crm' ? { path: `${claimsOf(token).tid}/x` } : {});

/** A call that must be allowed (it also warms the tenant's Vault login, so a later hold catches only the read). */
export async function expectAllowed(h: Harness, token: string, tool = 'query_crm'): Promise<string> {
  const id = callId('allowed');
  const answer = await h.authorize('crm-mcp', { token, tool, arguments: argumentsFor(token, tool), call_id: id });
  expect([answer.status, answer.body.decision]).toEqual([200, 'allow']);
  return id;
}

/**
 * Holds the upstream read, starts the call on `caller`, runs `kill` while the broker waits on OpenBao,
 * and only after the kill has answered lets the read through. Returns the call's answer and id.
 */
export async function killWhileResolving(vault: GatedProxy, caller: Harness, token: string, kill: () => Promise<{ status: number }>, options: { hold?: RegExp; tool?: string } = {}) {
  const tool = options.tool ?? 'query_crm';
  const id = callId(`in-flight-${tool}`);
  vault.hold(options.hold ?? KV_READ);
  const pending = caller.authorize('crm-mcp', { token, tool, arguments: argumentsFor(token, tool), call_id: id });
  await vault.held();
  const killed = await kill();
  expect(killed.status).toBe(200);
  vault.release();
  return { answer: await pending, id };
}

/**
 * No allow for the call in any stream; in the tenant's stream the call's records are its intent before
 * the kill's record and a deny with the kill's reason after it, no allow the kill covers comes after it, and the chain verifies.
 */
export async function expectKilledInOrder(h: Harness, tenant: string, id: string, reason: string, isKill: (e: any) => boolean, coveredBy: (e: any) => boolean): Promise<void> {
  await expectNoAllowAnywhere(h, [id]);
  const events = await auditEvents(h, tenant);
  const killAt = events.findIndex(isKill);
  expect(killAt).toBeGreaterThanOrEqual(0);
  // The call's intent was written as its read started, before the kill; its outcome, the deny, after it.
  const records = events.filter((e) => e.call_id === id);
  expect(records.map((e) => [e.decision, e.reason])).toEqual([
    ['intent', undefined],
    ['deny', reason],
  ]);
  expect(events.indexOf(records[0])).toBeLessThan(killAt);
  expect(events.indexOf(records[1])).toBeGreaterThan(killAt);
  expect(events.slice(killAt + 1).filter((e) => e.decision === 'allow' && coveredBy(e))).toEqual([]);
  expect((await h.get(`/v1/audit/verify?tenant=${tenant}`, h.operatorToken)).body.ok).toBe(true);
}

/** Leases OpenBao minted in answers after `from` (the proxy saw them; the broker showed them to nobody). */
export function leasesMinted(vault: GatedProxy, from: number): string[] {
  return [...vault.responses().slice(from).matchAll(/"lease_id":"(database\/creds\/[^"]+)"/g)].map((m) => m[1]!);
}

export async function metricValue(h: Harness, name: string): Promise<number> {
  return Number(new RegExp(`^${name} (\\d+)`, 'm').exec((await h.get('/metrics')).body)?.[1] ?? 0);
}
