import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createLocalSecretStore } from '../../adapters/local';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import type { Harness } from './broker-harness';
import { callId, claimsOf } from './isolation-assertions';

/** Every file below `dir`, for tests that search a data dir for what a tenant left behind. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
}

export async function tokenFor(h: Harness, principal: string, secret: string): Promise<string> {
  const answer = await h.tokenRequest({ grant_type: 'client_credentials', client_id: principal, client_secret: secret, audience: 'crm-mcp' });
  expect(answer.status).toBe(200);
  return answer.body.access_token as string;
}

export interface TenantData {
  token: string;
  session: string;
  approval: string;
  quarantined: string;
  /** A call left open (its quota slot held, its call record live). */
  openCall: string;
  secretName: string;
  secretValue: string;
  /** Every value above and the call and request ids of its calls: what only this tenant holds. */
  values: string[];
}

/**
 * Gives a tenant of the isolation policy some of everything a tenant export holds and a tenant delete
 * removes: two calls (quota, budget, audit), an approval waiting, a second session quarantined by an
 * oversized export, a call left open, and a local secret of its own beside `crm`.
 */
export async function seedTenantData(h: Harness, tenant: string, principal: string, secret: string): Promise<TenantData> {
  const values: string[] = [];
  const token = await tokenFor(h, principal, secret);
  const session = claimsOf(token).sid as string;
  for (let i = 0; i < 2; i++) {
    const id = callId(`${tenant}-q${i}`);
    const allow = await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/r${i}` }, call_id: id });
    expect(allow.status).toBe(200);
    values.push(id, allow.headers.get('x-request-id')!);
  }
  const ask = await h.authorize('crm-mcp', { token, tool: 'send_email', arguments: { to: `${tenant}@example.test` }, call_id: callId(`${tenant}-mail`) });
  expect(ask.body.reason).toBe('approval_required');
  const other = await tokenFor(h, principal, secret);
  const exportId = callId(`${tenant}-export`);
  expect((await h.authorize('crm-mcp', { token: other, tool: 'export_report', arguments: {}, call_id: exportId })).status).toBe(200);
  expect((await h.post('/v1/complete', { call_id: exportId, status: 'success', records: 5000 }, h.serverKeys['crm-mcp'])).status).toBe(200);
  const openCall = callId(`${tenant}-open`);
  expect((await h.authorize('crm-mcp', { token, tool: 'query_crm', arguments: { path: `${tenant}/open` }, call_id: openCall })).status).toBe(200);
  const secretName = `${tenant}-only-${randomBytes(12).toString('base64url')}`;
  const secretValue = `${tenant}-value-${randomBytes(12).toString('base64url')}`;
  await createLocalSecretStore({ dataDir: h.dataDir, masterKey: await loadOrCreateMasterKey(h.dataDir) }).set(tenant, secretName, secretValue);
  const data = { token, session, approval: ask.body.approval_id as string, quarantined: claimsOf(other).sid as string, openCall, secretName, secretValue };
  // The approval's argument too: an export opens it (its tenant's key only), nothing else may hold it in clear.
  values.push(session, data.approval, data.quarantined, openCall, exportId, secretName, secretValue, `${tenant}@example.test`);
  return { ...data, values };
}
