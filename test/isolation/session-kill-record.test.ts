import { startHarness, type Harness } from '../support/broker-harness';
import { auditEvents, callId, claimsOf, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * A session kill is recorded in its tenant's stream even when the session never had an allow: the
 * broker knows a session (and its tenant) from the moment it issues the session's first token, so an
 * operator killing an agent before it acted still leaves the record where that tenant's auditors look.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

const EXCHANGE = { grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token_type: 'urn:ietf:params:oauth:token-type:access_token' };
const revoke = (target: Record<string, string | boolean>) => h.post('/v1/revoke', { ...target, reason: 'killed before it acted' }, h.operatorToken);
const revokeRecords = async (tenant: string, sid: string) => (await auditEvents(h, tenant)).filter((e) => e.type === 'revoke' && e.detail === `session ${sid}`);

async function expectRecordedOnlyIn(tenant: string, sid: string): Promise<void> {
  expect(await revokeRecords(tenant, sid)).toEqual([expect.objectContaining({ operator: 'ops', reason: 'killed before it acted' })]);
  for (const other of Object.keys(h.policy.tenants).filter((t) => t !== tenant)) expect(await revokeRecords(other, sid)).toEqual([]);
}

it('records the kill of a session that only ever got a token, in its own tenant\'s stream', async () => {
  const token = await h.token('acme-agent', 'crm-mcp');
  const sid = claimsOf(token).sid as string;
  expect((await revoke({ session: sid })).status).toBe(200);
  await expectRecordedOnlyIn('acme', sid);
  const id = callId('after-kill');
  expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'session_revoked');
  await expectNoAllowAnywhere(h, [id]);
});

it('records the kill of a session whose every call was denied', async () => {
  const token = await h.token('globex-reader', 'crm-mcp');
  const sid = claimsOf(token).sid as string;
  const ids = [callId('denied-1'), callId('denied-2')];
  expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: {}, call_id: ids[0] }), 403, 'tool_not_allowed');
  expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: ids[1] }), 403, 'resource_out_of_scope');
  expect((await revoke({ session: sid })).status).toBe(200);
  await expectRecordedOnlyIn('globex', sid);
  await expectNoAllowAnywhere(h, ids);
});

it('records the kill of a refreshed session that never acted, once, and the refreshed token is dead too', async () => {
  const first = await h.token('initech-agent', 'crm-mcp');
  const refreshed = await h.post('/v1/token', { ...EXCHANGE, subject_token: first, client_id: 'initech-agent', client_secret: h.clientSecrets['initech-agent'] });
  const sid = claimsOf(first).sid as string;
  expect(refreshed.status).toBe(200);
  expect((await revoke({ session: sid })).status).toBe(200);
  await expectRecordedOnlyIn('initech', sid);
  expect(refreshed.status).toBe(200);
  expect(claimsOf(refreshed.body.access_token).sid).toBe(sid);
  expectDeny(h, await h.authorize('crm-mcp', { token: refreshed.body.access_token, tool: 'query_crm', arguments: { path: 'initech/x' } }), 403, 'session_revoked');
});

it('refuses a session id the broker never issued (404 unknown_target) and, forced, records it in no tenant', async () => {
  const sid = 'never-issued-session';
  const refused = await revoke({ session: sid });
  expect(refused.status).toBe(404);
  expect(refused.body).toMatchObject({ error: 'unknown_target', target: 'session' });
  expect((await revoke({ session: sid, force: true })).status).toBe(200);
  for (const tenant of Object.keys(h.policy.tenants)) expect(await revokeRecords(tenant, sid)).toEqual([]);
});

it('leaks nothing', async () => {
  expect(await findLeaks(h)).toEqual([]);
});
