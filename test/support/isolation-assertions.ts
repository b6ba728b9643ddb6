import { randomUUID } from 'node:crypto';
import type { Harness } from './broker-harness';

/**
 * What every isolation test checks after trying to break an invariant: the exact reason and status, and
 * that the protected thing did not happen (no credential in the answer, no allow in any audit stream).
 */

export type Answer = { status: number; body: any; headers: Headers };

/** A call id that names the test that made it, so audit records can be traced back to their request. */
export function callId(label: string): string {
  return `${label.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 80)}-${randomUUID()}`;
}

/** Asserts a deny with this status and reason, and that no tenant's upstream credential is in it. */
export function expectDeny(h: Harness, answer: Answer, status: number, reason: string): void {
  expect({ status: answer.status, decision: answer.body?.decision, reason: answer.body?.reason }).toEqual({ status, decision: 'deny', reason });
  expect(answer.body).not.toHaveProperty('credential');
  expect(answer.body).not.toHaveProperty('arguments');
  const text = JSON.stringify(answer.body);
  for (const value of Object.values(h.upstream)) expect(text.includes(value)).toBe(false);
}

/** Asserts an allow for `tenant` carrying that tenant's credential and nobody else's. */
export function expectAllow(h: Harness, answer: Answer, tenant: string): void {
  expect({ status: answer.status, decision: answer.body?.decision, reason: answer.body?.reason, tenant: answer.body?.tenant }).toEqual({
    status: 200,
    decision: 'allow',
    reason: undefined,
    tenant,
  });
  expect(answer.body.credential.value).toBe(h.upstream[tenant]);
  const text = JSON.stringify(answer.body);
  for (const [other, value] of Object.entries(h.upstream)) if (other !== tenant) expect(text.includes(value)).toBe(false);
}

/** One tenant's audit events, through the operator API. */
export async function auditEvents(h: Harness, tenant: string): Promise<any[]> {
  const answer = await h.get(`/v1/audit?tenant=${tenant}&limit=10000`, h.operatorToken);
  expect(answer.status).toBe(200);
  for (const event of answer.body.events) expect(event.tenant).toBe(tenant);
  return answer.body.events;
}

/** Every tenant's audit events, keyed by tenant. */
export async function allAudit(h: Harness): Promise<Record<string, any[]>> {
  const out: Record<string, any[]> = {};
  for (const tenant of Object.keys(h.policy.tenants)) out[tenant] = await auditEvents(h, tenant);
  return out;
}

/**
 * Asserts that no audit stream holds an allow for any of these call ids, and that every stream except
 * `changed` (if given) is exactly as it was in `before`.
 */
export async function expectNoAllowAnywhere(h: Harness, callIds: string[], before?: Record<string, any[]>, changed?: string): Promise<void> {
  const now = await allAudit(h);
  const ids = new Set(callIds);
  for (const [tenant, events] of Object.entries(now)) {
    const allowed = events.filter((e) => e.decision === 'allow' && ids.has(e.call_id));
    expect({ tenant, allowed }).toEqual({ tenant, allowed: [] });
    if (before && tenant !== changed) expect({ tenant, events }).toEqual({ tenant, events: before[tenant] });
  }
}

/**
 * For a describe block of attacks with acme's token: the token, and afterwards the proof that every
 * call id the tests recorded was denied with `reason`, recorded in acme's own stream only, and allowed
 * nowhere. The harness is passed as a getter because suites start it in their own beforeAll.
 */
export function deniedInAcmeOnly(harness: () => Harness, reason: string): { acme: string; ids: string[] } {
  const block = { acme: '', ids: [] as string[] };
  let before: Record<string, any[]>;
  beforeAll(async () => {
    block.acme = await harness().token('acme-agent', 'crm-mcp');
    before = await allAudit(harness());
  });
  afterAll(async () => {
    await expectNoAllowAnywhere(harness(), block.ids, before, 'acme');
    const denies = (await auditEvents(harness(), 'acme')).filter((e) => block.ids.includes(e.call_id));
    expect(denies.map((e) => e.reason)).toEqual(block.ids.map(() => reason));
  });
  return block;
}

/** The payload of a JWT, without verifying it (for tests that need its sid or jti). */
export function claimsOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

export function headerOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8'));
}
