import { startHarness, type Harness } from '../support/broker-harness';
import { callId, deniedInAcmeOnly, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';

/**
 * A checked or forced field has one spelling. `{path: "acme/ok", PATH: "globex/secret"}` passes a
 * check of `path`, and Go's encoding/json (case-insensitive, last match wins) then reads globex/secret.
 * Keys are folded the way tenant keys are (one folding, src/authorize/fold-key.ts: NFKC, case, invisible
 * characters, combining marks, separators); a second key that folds to the resource argument is
 * `resource_out_of_scope`, one that folds to an injected field is `tenant_override`, and tenant keys are
 * found at any depth under the same folding. Each attack is recorded in acme's stream only and allowed
 * nowhere (deniedInAcmeOnly).
 *
 * query_crm scopes `path` and injects `region`; kv_get (added here) scopes `key` and injects `link`, for
 * the Kelvin sign K and the dotless ı.
 */

let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    overrides: (p) => {
      p.tenants.acme.tools.kv_get = { credential: 'crm', resource: { arg: 'key', prefix: 'acme/' }, inject: { link: 'replica' } };
      p.tenants.acme.principals['acme-agent'].tools.push('kv_get');
      p.servers['crm-mcp'].tools.push('kv_get');
    },
  });
});

afterAll(async () => {
  await h?.close();
});

const FOREIGN = 'globex/secret';

describe('a second spelling of the resource argument (resource_out_of_scope)', () => {
  const block = deniedInAcmeOnly(() => h, 'resource_out_of_scope');

  it.each([
    ['upper case', 'PATH'],
    ['title case', 'Path'],
    ['mixed case', 'pAtH'],
    ['fullwidth letters', 'ｐａｔｈ'],
    ['fullwidth capitals', 'ＰＡＴＨ'],
    ['a zero-width joiner inside', 'pa\u200Dth'],
    ['a zero-width space inside', 'pa\u200Bth'],
    ['a leading zero-width no-break space (BOM)', '\uFEFFpath'],
    ['a soft hyphen inside', 'pa\u00ADth'],
    ['a Hangul filler inside', 'pa\u3164th'],
    ['a variation selector after it', 'path\uFE0F'],
    ['a combining accent', 'pa\u0301th'],
    ['a trailing space', 'path '],
    ['a trailing no-break space', 'path\u00A0'],
    ['an underscore inside', 'pa_th'],
    ['hyphens', 'p-a-t-h'],
  ])('denies path plus %s: %j', async (_name, variant) => {
    const id = callId('resource-spelling');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path: 'acme/ok', [variant]: FOREIGN }, call_id: id });
    expectDeny(h, answer, 403, 'resource_out_of_scope');
  });

  it('denies the second spelling when it comes first, and when it is the only one', async () => {
    for (const args of [{ PATH: FOREIGN, path: 'acme/ok' }, { PATH: 'acme/ok' }, { Path: 'acme/ok', PATH: 'acme/ok' }]) {
      const id = callId('resource-spelling-order');
      block.ids.push(id);
      expectDeny(h, await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: args, call_id: id }), 403, 'resource_out_of_scope');
    }
  });

  it.each([
    ['the Kelvin sign K', '\u212Aey'],
    ['upper case', 'KEY'],
    ['fullwidth', 'ｋｅｙ'],
    ['a zero-width joiner', 'k\u200Dey'],
  ])('denies key plus %s on kv_get', async (_name, variant) => {
    const id = callId('resource-spelling-kv');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'kv_get', arguments: { key: 'acme/ok', [variant]: FOREIGN }, call_id: id });
    expectDeny(h, answer, 403, 'resource_out_of_scope');
  });
});

describe('a second spelling of an injected field (tenant_override)', () => {
  const block = deniedInAcmeOnly(() => h, 'tenant_override');

  it.each([
    ['upper case', 'REGION'],
    ['title case', 'Region'],
    ['fullwidth', 'ｒｅｇｉｏｎ'],
    ['a dotless ı (Go reads it as i)', 'reg\u0131on'],
    ['a dotted capital İ', 'REG\u0130ON'],
    ['a zero-width joiner', 're\u200Dgion'],
    ['a trailing zero-width space', 'region\u200B'],
    ['an underscore', 're_gion'],
  ])('denies %s: %j beside the injected region', async (_name, variant) => {
    const id = callId('inject-spelling');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path: 'acme/ok', [variant]: 'us-east-1' }, call_id: id });
    expectDeny(h, answer, 403, 'tenant_override');
  });

  it('denies the variant even when the caller also sends the injected field itself', async () => {
    const id = callId('inject-spelling-both');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path: 'acme/ok', region: 'eu-west-1', REGION: 'us-east-1' }, call_id: id });
    expectDeny(h, answer, 403, 'tenant_override');
  });

  it.each([
    ['a dotless ı', 'l\u0131nk'],
    ['upper case', 'LINK'],
    ['a Hangul filler', 'li\u3164nk'],
  ])('denies %s beside the injected link on kv_get', async (_name, variant) => {
    const id = callId('inject-spelling-kv');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'kv_get', arguments: { key: 'acme/ok', [variant]: 'primary' }, call_id: id });
    expectDeny(h, answer, 403, 'tenant_override');
  });

  it.each([
    ['a dotless ı, nested', { filter: { 't\u0131d': 'globex' } }],
    ['a dotted capital İ', { 'T\u0130D': 'globex' }],
    ['a space inside, in an array', { items: [{ id: 1 }, { 'tenant id': 'globex' }] }],
    ['a Hangul filler inside, nested', { owner: { 'TENANT\u3164ID': 'globex' } }],
    ['a combining dot', { 'ti\u0307d': 'globex' }],
    ['a variation selector, nested twice', { a: { b: { 'tenant\uFE0F': 'globex' } } }],
  ])('denies a tenant key with %s naming another tenant', async (_name, extra) => {
    const id = callId('tenant-key-spelling');
    block.ids.push(id);
    const answer = await h.authorize('crm-mcp', { token: block.acme, tool: 'query_crm', arguments: { path: 'acme/ok', ...extra }, call_id: id });
    expectDeny(h, answer, 403, 'tenant_override');
  });
});

describe('what stays allowed', () => {
  it('exact spellings, with the checked path and forced fields handed on, and keys that merely resemble them', async () => {
    const acme = await h.token('acme-agent', 'crm-mcp');
    const answer = await h.authorize('crm-mcp', { token: acme, tool: 'query_crm', arguments: { path: 'acme/ok', region: 'us-east-1', paths: ['x'], regional: true, filter: { PATH: 'nested is not the resource' } } });
    expectAllow(h, answer, 'acme');
    expect(answer.body.arguments).toEqual({ path: 'acme/ok', region: 'eu-west-1', paths: ['x'], regional: true, filter: { PATH: 'nested is not the resource' } });
    const kv = await h.authorize('crm-mcp', { token: acme, tool: 'kv_get', arguments: { key: 'acme/ok', keys: 2 } });
    expectAllow(h, kv, 'acme');
    expect(kv.body.arguments).toEqual({ key: 'acme/ok', keys: 2, link: 'replica' });
  });
});

it("leaks none of the run's secrets or tokens", async () => {
  expect(await findLeaks(h)).toEqual([]);
});
