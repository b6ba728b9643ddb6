import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, auditEvents, callId, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * An own "__proto__", "constructor" or "prototype" key is refused with 400 anywhere in a body, rather
 * than carried as data: the argument hash used to drop "__proto__" (the prototype setter ate it), so an
 * approved call could run with hidden extra content and its audit hash described a different call; and
 * any consumer that copies or merges arguments in JavaScript would read these keys differently again.
 * The refusal happens when the body is read, before the token, so no stream records anything.
 */

let h: Harness;
let acme = '';

beforeAll(async () => {
  h = await startHarness();
  acme = await h.token('acme-agent', 'crm-mcp');
});

afterAll(async () => {
  await h?.close();
});

const email = { to: 'cfo@acme.example', subject: 'Q3', body: 'numbers attached' };

function rawAuthorize(tool: string, id: string, rawArgs: string) {
  const body = `{"token":${JSON.stringify(acme)},"tool":"${tool}","call_id":"${id}","arguments":${rawArgs}}`;
  return h.postRaw('/v1/authorize', body, { contentType: 'application/json', bearer: h.serverKeys['crm-mcp'] });
}

describe('an approved call cannot carry content its approval and audit hash do not describe', () => {
  let approvalId = '';
  const ids: string[] = [];

  it('asks for approval of the plain call, and an operator approves it', async () => {
    const pending = await h.authorize('crm-mcp', { token: acme, tool: 'send_email', arguments: email });
    expectDeny(h, pending, 403, 'approval_required');
    approvalId = pending.body.approval_id;
    expect((await h.post(`/v1/approvals/${approvalId}/approve`, {}, h.operatorToken)).body).toMatchObject({ status: 'approved' });
  });

  it.each([
    ['a top-level __proto__ with a hidden bcc', `{"to":"${email.to}","subject":"${email.subject}","body":"${email.body}","__proto__":{"bcc":"attacker@evil.example"}}`],
    ['__proto__ first, spelled with escapes', `{"\\u005f_proto__":{"bcc":"attacker@evil.example"},"to":"${email.to}","subject":"${email.subject}","body":"${email.body}"}`],
    ['a constructor.prototype chain', `{"to":"${email.to}","subject":"${email.subject}","body":"${email.body}","constructor":{"prototype":{"bcc":"attacker@evil.example"}}}`],
  ])('refuses the approved call with %s (bad_request), leaving the approval unused', async (_name, rawArgs) => {
    const before = await allAudit(h);
    const id = callId('hidden-approved');
    ids.push(id);
    expectDeny(h, await rawAuthorize('send_email', id, rawArgs), 400, 'bad_request');
    await expectNoAllowAnywhere(h, [id], before);
  });

  it('still lets the exact approved call through once, and its audit MAC is the MAC of what the tool receives', async () => {
    const id = callId('approved-plain');
    const through = await h.authorize('crm-mcp', { token: acme, tool: 'send_email', arguments: email, call_id: id });
    expectAllow(h, through, 'acme');
    expect(through.body.arguments).toEqual(email);
    const record = (await auditEvents(h, 'acme')).find((e) => e.call_id === id && e.decision === 'allow');
    expect(record.arguments_mac).toBe(await h.broker.argumentMacs.mac('acme', through.body.arguments));
    expectDeny(h, await h.authorize('crm-mcp', { token: acme, tool: 'send_email', arguments: email }), 403, 'approval_required');
    await expectNoAllowAnywhere(h, ids);
  });
});

describe('reserved keys anywhere in the arguments or the body are refused (bad_request)', () => {
  let before: Record<string, any[]>;
  const ids: string[] = [];
  beforeAll(async () => {
    before = await allAudit(h);
  });
  afterAll(async () => {
    // acme's stream gains only the look-alike control's allow; no refused id is anywhere.
    await expectNoAllowAnywhere(h, ids, before, 'acme');
    expect((await auditEvents(h, 'acme')).filter((e) => ids.includes(e.call_id))).toEqual([]);
  });

  it.each([
    ['a top-level __proto__', '{"path":"acme/x","__proto__":{"limit":1000000}}'],
    ['__proto__ hiding a tenant key', '{"path":"acme/x","__proto__":{"tenant_id":"globex"}}'],
    ['__proto__ nested in an object', '{"path":"acme/x","filter":{"__proto__":{"owner":"globex"}}}'],
    ['__proto__ inside an array element', '{"path":"acme/x","items":[{"id":1},{"__proto__":{"id":2}}]}'],
    ['__proto__ holding null', '{"path":"acme/x","__proto__":null}'],
    ['__proto__ spelled with escapes', '{"path":"acme/x","\\u005f\\u005fproto\\u005f\\u005f":{"x":1}}'],
    ['constructor with a prototype', '{"path":"acme/x","constructor":{"prototype":{"isAdmin":true}}}'],
    ['constructor as a plain string', '{"path":"acme/x","constructor":"x"}'],
    ['prototype nested', '{"path":"acme/x","options":{"prototype":{"polluted":true}}}'],
    ['prototype spelled with an escape', '{"path":"acme/x","\\u0070rototype":1}'],
  ])('%s', async (_name, rawArgs) => {
    const id = callId('reserved');
    ids.push(id);
    expectDeny(h, await rawAuthorize('query_crm', id, rawArgs), 400, 'bad_request');
  });

  it('__proto__ at the top of the body', async () => {
    const id = callId('reserved-body');
    ids.push(id);
    const body = `{"__proto__":{"tool":"export_report"},"token":${JSON.stringify(acme)},"tool":"query_crm","call_id":"${id}","arguments":{"path":"acme/x"}}`;
    expectDeny(h, await h.postRaw('/v1/authorize', body, { contentType: 'application/json', bearer: h.serverKeys['crm-mcp'] }), 400, 'bad_request');
  });

  it('while keys that only look like them are ordinary data, returned and hashed as sent', async () => {
    const id = callId('lookalike');
    const answer = await rawAuthorize('query_crm', id, '{"path":"acme/x","Constructor":1,"__proto":2,"proto":{"x":3}}');
    expectAllow(h, answer, 'acme');
    expect(answer.body.arguments).toEqual({ path: 'acme/x', Constructor: 1, __proto: 2, proto: { x: 3 }, region: 'eu-west-1' });
    const record = (await auditEvents(h, 'acme')).find((e) => e.call_id === id && e.decision === 'allow');
    expect(record.arguments_mac).toBe(await h.broker.argumentMacs.mac('acme', answer.body.arguments));
  });
});

it("leaks none of the run's secrets or tokens", async () => {
  expect(await findLeaks(h)).toEqual([]);
});
