import { randomBytes } from 'node:crypto';
import { sha256Hex } from '../../src/crypto/hash';
import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, auditEvents, callId, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * The tool name is text the agent chose. A prompt-injected agent that names a "tool" after a secret it
 * holds must not get that secret written into the audit trail (where operators, exports and log
 * shippers read it) or echoed in a deny message. A name the calling server does not serve is recorded
 * as "(unknown)" with its SHA-256 and is never repeated; a name the server serves is policy text and is
 * recorded as is. The leak scan at the end searches every log line, data-dir file (the audit files),
 * response body (the audit API's too) and /metrics for each planted name, raw and encoded.
 */

let h: Harness;
let acme = '';
let before: Record<string, any[]>;
const planted: Array<{ label: string; value: string }> = [];

beforeAll(async () => {
  h = await startHarness();
  acme = await h.token('acme-agent', 'crm-mcp');
  before = await allAudit(h);
});

afterAll(async () => {
  await h?.close();
});

describe('an unknown tool name is recorded only as its hash and never echoed (tool_not_allowed)', () => {
  const ids: string[] = [];
  afterAll(async () => {
    await expectNoAllowAnywhere(h, ids, before, 'acme');
  });

  it.each([
    ['an API-key-shaped secret', () => `sk_live_${randomBytes(24).toString('hex')}`],
    ["acme's own upstream credential", () => h.upstream.acme!],
    ['a name that forges an audit line', () => `x"}\n{"type":"authorize","decision":"allow","tool":"query_crm","n":"${randomBytes(8).toString('hex')}`],
    ['a 128-character name', () => randomBytes(64).toString('hex')],
    ['a name with bidi overrides and zero-width characters', () => `\u202Eliam_dnes\u200B${randomBytes(12).toString('base64url')}`],
    ['a name with control characters', () => `\u0000\u001b[31m${randomBytes(12).toString('base64url')}\r`],
  ])('%s', async (label, make) => {
    const name = make();
    planted.push({ label: `tool name (${label})`, value: name });
    const id = callId('unknown-tool');
    ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: acme, tool: name, arguments: {}, call_id: id });
    expectDeny(h, answer, 403, 'tool_not_allowed');
    expect(JSON.stringify(answer.body).includes(JSON.stringify(name).slice(1, -1))).toBe(false);
    expect(answer.body.message).toBe('this tool (not one this server serves) is not allowed for this token on this server');

    const records = (await auditEvents(h, 'acme')).filter((e) => e.call_id === id);
    expect(records.map((e) => [e.decision, e.reason, e.tool, e.tool_sha256])).toEqual([['deny', 'tool_not_allowed', '(unknown)', sha256Hex(name)]]);
  });

  it("records a tenant's real tool as unknown when this server does not serve it", async () => {
    const mail = await h.token('acme-agent', 'mail-mcp');
    const id = callId('unserved-tool');
    ids.push(id);
    expectDeny(h, await h.authorize('mail-mcp', { token: mail, tool: 'query_crm', arguments: { path: 'acme/x' }, call_id: id }), 403, 'tool_not_allowed');
    const record = (await auditEvents(h, 'acme')).find((e) => e.call_id === id);
    expect([record.tool, record.tool_sha256]).toEqual(['(unknown)', sha256Hex('query_crm')]);
  });
});

it('names a tool the server serves, in the audit and in the deny, when the principal may not use it', async () => {
  const reader = await h.token('acme-reader', 'crm-mcp');
  const id = callId('served-but-not-allowed');
  const answer = await h.authorize('crm-mcp', { token: reader, tool: 'export_report', arguments: {}, call_id: id });
  expectDeny(h, answer, 403, 'tool_not_allowed');
  expect(answer.body.message).toBe('tool "export_report" is not allowed for this token on this server');
  const record = (await auditEvents(h, 'acme')).find((e) => e.call_id === id);
  expect(record).toMatchObject({ decision: 'deny', tool: 'export_report' });
  expect(record).not.toHaveProperty('tool_sha256');
});

it('leaves no planted tool name, raw or encoded, in any log line, audit file, response or metric', async () => {
  expect(planted.length).toBe(6);
  expect(await findLeaks(h, planted)).toEqual([]);
});
