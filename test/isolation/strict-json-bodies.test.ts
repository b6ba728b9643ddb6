import { startHarness, type Harness } from '../support/broker-harness';
import { allAudit, callId, expectAllow, expectDeny, expectNoAllowAnywhere } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * One body, one reading. Every JSON body is read by one strict reader, so a parser behind the broker
 * (first-wins on duplicate keys, exact big integers, another charset) cannot see a different request
 * than the one the broker checked. Each body below would be read as acme's allowed call by a lenient
 * reader; each must be a 400 (415 for a charset) before any token is looked at, so no audit stream
 * changes at all, and nothing is allowed.
 */

let h: Harness;
let acme = '';
let before: Record<string, any[]>;
const ids: string[] = [];

beforeAll(async () => {
  h = await startHarness();
  acme = await h.token('acme-agent', 'crm-mcp');
  before = await allAudit(h);
});

afterAll(async () => {
  await h?.close();
});

const JSON_TYPE = 'application/json';
const serverKey = () => h.serverKeys['crm-mcp'];

/** A raw authorize body for acme's query_crm with `args` (raw JSON text) and `extra` raw top-level members. */
function body(id: string, args: string, extra = ''): string {
  return `{"token":${JSON.stringify(acme)},"tool":"query_crm","call_id":"${id}"${extra},"arguments":${args}}`;
}

async function expectRefused(id: string, bytes: string | Uint8Array, contentType = JSON_TYPE, status = 400): Promise<void> {
  ids.push(id);
  const answer = await h.postRaw('/v1/authorize', bytes, { contentType, bearer: serverKey() });
  expectDeny(h, answer, status, 'bad_request');
}

describe('duplicate keys anywhere in the body are refused (bad_request)', () => {
  it.each([
    ['the resource argument, foreign value last', '{"path":"acme/x","path":"globex/x"}'],
    ['the resource argument, foreign value first', '{"path":"globex/x","path":"acme/x"}'],
    ['a tenant key in the arguments', '{"path":"acme/x","tenant_id":"acme","tenant_id":"globex"}'],
    ['a tenant key, foreign value first', '{"path":"acme/x","tenant_id":"globex","tenant_id":"acme"}'],
    ['a tenant key nested in the arguments', '{"path":"acme/x","filter":{"tid":"acme","tid":"globex"}}'],
    ['a key inside an array element', '{"path":"acme/x","items":[{"id":1},{"id":2,"id":3}]}'],
    ['a key repeated with the same value', '{"path":"acme/x","limit":5,"limit":5}'],
    ['an injected field', '{"path":"acme/x","region":"us-east-1","region":"us-east-1"}'],
    ['a key spelled with a \\u escape the second time', '{"path":"acme/x","pat\\u0068":"globex/x"}'],
    ['a tenant key spelled with escapes', '{"path":"acme/x","tenant_id":"acme","\\u0074enant_id":"globex"}'],
    ['a key whose escape is a surrogate pair', '{"path":"acme/x","\\ud83d\\ude00":1,"😀":2}'],
  ])('in the arguments: %s', async (_name, args) => {
    const id = callId('dup-args');
    await expectRefused(id, body(id, args));
  });

  it.each([
    ['tenant_id, another tenant last', ',"tenant_id":"acme","tenant_id":"globex"'],
    ['tenant_id, another tenant first', ',"tenant_id":"globex","tenant_id":"acme"'],
    ['tid spelled with an escape', ',"tid":"acme","t\\u0069d":"globex"'],
    ['tool', ',"tool":"export_report"'],
    ['call_id', ',"call_id":"other-id"'],
    ['arguments', ',"arguments":{"path":"globex/x"}'],
  ])('at the top of the body: %s', async (_name, extra) => {
    const id = callId('dup-body');
    await expectRefused(id, body(id, '{"path":"acme/x"}', extra));
  });

  it('on every other JSON endpoint: token, complete, revoke and manifest', async () => {
    const token = await h.postRaw('/v1/token', `{"grant_type":"client_credentials","client_id":"acme-agent","client_id":"globex-agent","client_secret":${JSON.stringify(h.clientSecrets['acme-agent'])},"audience":"crm-mcp"}`, { contentType: JSON_TYPE });
    expect([token.status, token.body.error]).toEqual([400, 'invalid_request']);
    expect(token.body).not.toHaveProperty('access_token');

    const complete = await h.postRaw('/v1/complete', '{"call_id":"a","status":"success","status":"error"}', { contentType: JSON_TYPE, bearer: serverKey() });
    expect([complete.status, complete.body.error]).toEqual([400, 'bad_request']);

    const manifest = await h.postRaw('/v1/manifest', `{"token":${JSON.stringify(acme)},"token":"x"}`, { contentType: JSON_TYPE, bearer: serverKey() });
    expectDeny(h, manifest, 400, 'bad_request');

    const revoke = await h.postRaw('/v1/revoke', '{"tenant":"globex","tenant":"initech"}', { contentType: JSON_TYPE, bearer: h.operatorToken });
    expect([revoke.status, revoke.body.error]).toEqual([400, 'bad_request']);
    expect((await h.get('/v1/tenants/globex', h.operatorToken)).body.revoked).toBe(false);
    expect((await h.get('/v1/tenants/initech', h.operatorToken)).body.revoked).toBe(false);
  });
});

describe('numbers that cannot be held exactly are refused (bad_request)', () => {
  it.each([
    ['2^53 + 1', '9007199254740993'],
    ['-(2^53 + 1)', '-9007199254740993'],
    ['2^53, the first unsafe integer', '9007199254740992'],
    ['-2^53', '-9007199254740992'],
    ['a 20-digit id', '12345678901234567890'],
    ['2^53 + 1 written with a fraction', '9007199254740993.0'],
    ['an exponent past 2^53', '1e16'],
    ['1e400 (Infinity to JSON.parse)', '1e400'],
    ['-1e400', '-1e400'],
    ['1.5e300', '1.5e300'],
  ])('%s: %s', async (_name, number) => {
    const id = callId('unsafe-number');
    await expectRefused(id, body(id, `{"path":"acme/x","limit":${number}}`));
  });

  it('an unsafe integer nested in an array', async () => {
    const id = callId('unsafe-number-nested');
    await expectRefused(id, body(id, '{"path":"acme/x","filter":{"ids":[1,2,9007199254740993]}}'));
  });

  it('while the largest safe integers, fractions and exponents within range arrive exactly as sent', async () => {
    const answer = await h.postRaw('/v1/authorize', body(callId('safe-numbers'), '{"path":"acme/x","max":9007199254740991,"min":-9007199254740991,"ratio":0.125,"big":1.5e15,"zero":-0}'), {
      contentType: JSON_TYPE,
      bearer: serverKey(),
    });
    expectAllow(h, answer, 'acme');
    expect(answer.body.arguments).toMatchObject({ max: 9007199254740991, min: -9007199254740991, ratio: 0.125, big: 1.5e15 });
  });
});

describe('only UTF-8 bodies are read', () => {
  const valid = (id: string) => body(id, '{"path":"acme/x"}');

  it.each([
    ['utf-16le', 'utf16le'],
    ['utf-16', 'utf16le'],
    ['UTF-16BE', 'utf16be'],
    ['utf-32', 'utf16le'],
    ['utf-7', 'utf8'],
    ['iso-8859-1', 'latin1'],
    ['"utf-16le" quoted', 'utf16le'],
  ] as const)('a declared charset=%s is refused with 415', async (charset, encoding) => {
    const id = callId('charset');
    const text = valid(id);
    const bytes = encoding === 'utf16be' ? Buffer.from(text, 'utf16le').swap16() : Buffer.from(text, encoding);
    await expectRefused(id, bytes, `application/json; charset=${charset}`, 415);
  });

  it.each([
    ['a UTF-16LE byte order mark', Buffer.from([0xff, 0xfe])],
    ['a UTF-16BE byte order mark', Buffer.from([0xfe, 0xff])],
    ['a UTF-8 byte order mark', Buffer.from([0xef, 0xbb, 0xbf])],
  ])('a body that starts with %s is refused', async (_name, bom) => {
    const id = callId('bom');
    const text = valid(id);
    const encoded = bom[0] === 0xef ? Buffer.from(text, 'utf8') : bom[0] === 0xff ? Buffer.from(text, 'utf16le') : Buffer.from(text, 'utf16le').swap16();
    await expectRefused(id, Buffer.concat([bom, encoded]));
  });

  it('a UTF-16 body without a charset is refused, not guessed at', async () => {
    const id = callId('utf16-undeclared');
    await expectRefused(id, Buffer.from(valid(id), 'utf16le'));
  });

  it.each([
    ['an overlong "." (C0 AE) in the path', [0xc0, 0xae]],
    ['an overlong "/" (E0 80 AF) in the path', [0xe0, 0x80, 0xaf]],
    ['a lone continuation byte', [0x80]],
    ['an invalid byte (FF)', [0xff]],
    ['a UTF-8-encoded surrogate (ED A0 80)', [0xed, 0xa0, 0x80]],
    ['a truncated sequence', [0xe2, 0x82]],
  ])('invalid UTF-8 is refused: %s', async (_name, seq) => {
    const id = callId('bad-utf8');
    const [head, tail] = body(id, '{"path":"acme/x@@"}').split('@@') as [string, string];
    await expectRefused(id, Buffer.concat([Buffer.from(head), Buffer.from(seq), Buffer.from(tail)]));
  });

  it.each([
    ['a lone high surrogate in a value', '{"path":"acme/x\\ud800"}'],
    ['a lone low surrogate in a key', '{"path":"acme/x","\\udc00":1}'],
  ])('an escape that is not valid Unicode is refused: %s', async (_name, args) => {
    const id = callId('lone-surrogate');
    await expectRefused(id, body(id, args));
  });

  it('while UTF-8 with or without charset=utf-8, and non-ASCII text, is read as sent', async () => {
    for (const contentType of [JSON_TYPE, 'application/json; charset=utf-8', 'application/json;charset="UTF-8"']) {
      const answer = await h.postRaw('/v1/authorize', Buffer.from(body(callId('utf8'), '{"path":"acme/ünïcödé/😀","note":"\\u00e9"}'), 'utf8'), { contentType, bearer: serverKey() });
      expectAllow(h, answer, 'acme');
      expect(answer.body.arguments).toMatchObject({ path: 'acme/ünïcödé/😀', note: 'é' });
    }
  });
});

it('allowed none of the refused bodies and wrote nothing to any audit stream for them', async () => {
  expect(ids.length).toBeGreaterThan(40);
  const now = await allAudit(h);
  // The allowed controls above are acme's; every other stream is untouched and no refused id is anywhere.
  await expectNoAllowAnywhere(h, ids, before, 'acme');
  expect(now.acme!.filter((e) => ids.includes(e.call_id))).toEqual([]);
});

it("leaks none of the run's secrets or tokens", async () => {
  expect(await findLeaks(h)).toEqual([]);
});
