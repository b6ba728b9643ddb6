import { authorizeBody, completeBody, fastAuthorizeBody, fastCompleteBody, fastManifestBody, manifestBody, readBody } from '../../../src/http/server-bodies';
import { parseStrictJson } from '../../../src/http/strict-json';

/**
 * The compiled validators of the hot bodies are only a shortcut: whatever they accept, the zod schema
 * (the contract) must accept with the same value, and they must accept the bodies real clients send
 * (or they would be dead weight). Every body here is read by the strict JSON reader first, as on the wire.
 */

const body = (json: string) => parseStrictJson(json) as Record<string, unknown>;
const titled = (list: readonly string[]) => list.map((json) => [json.length > 90 ? `${json.slice(0, 87)}…` : json, json] as const);

const VALID_AUTHORIZE = [
  '{"token":"t","tool":"query_crm"}',
  '{"token":"t","tool":"query_crm","arguments":{"path":"acme/a","limit":10}}',
  '{"token":"t","tool":"query_crm","arguments":{},"call_id":"c-1:2.3_4"}',
  '{"token":"t","tool":"x","tenant":"acme","tenant_id":"acme","tenantId":"acme","tid":""}',
  `{"token":"${'a'.repeat(8192)}","tool":"${'b'.repeat(128)}","call_id":"${'c'.repeat(128)}","tenant":"${'d'.repeat(256)}"}`,
];
const INVALID_AUTHORIZE = [
  '{}',
  '{"token":"","tool":"x"}',
  '{"token":"t","tool":""}',
  '{"token":1,"tool":"x"}',
  '{"token":"t"}',
  '{"tool":"x"}',
  `{"token":"${'a'.repeat(8193)}","tool":"x"}`,
  `{"token":"t","tool":"${'b'.repeat(129)}"}`,
  '{"token":"t","tool":"x","arguments":[]}',
  '{"token":"t","tool":"x","arguments":null}',
  '{"token":"t","tool":"x","arguments":"a"}',
  '{"token":"t","tool":"x","call_id":""}',
  '{"token":"t","tool":"x","call_id":"has space"}',
  '{"token":"t","tool":"x","call_id":"a\\nb"}',
  `{"token":"t","tool":"x","call_id":"${'c'.repeat(129)}"}`,
  '{"token":"t","tool":"x","call_id":7}',
  '{"token":"t","tool":"x","tenant":5}',
  '{"token":"t","tool":"x","tid":null}',
  `{"token":"t","tool":"x","tenantId":"${'d'.repeat(257)}"}`,
  '{"token":"t","tool":"x","extra":1}',
  '{"token":"t","tool":"x","Tenant":"acme"}',
  '{"token":"t","tool":"x","toString":"acme"}',
  '{"token":"t","tool":"x","hasOwnProperty":"acme"}',
];

const VALID_COMPLETE = [
  '{"call_id":"c1","status":"success"}',
  '{"call_id":"c1","status":"error","records":0}',
  '{"call_id":"c1","status":"success","records":9007199254740991,"usage":{}}',
  '{"call_id":"c1","status":"success","usage":{"cost":0.25,"tokens":12}}',
  '{"call_id":"c1","status":"success","usage":{"cost":0}}',
];
const INVALID_COMPLETE = [
  '{}',
  '{"call_id":"c1"}',
  '{"call_id":"c1","status":"ok"}',
  '{"call_id":"c 1","status":"success"}',
  '{"call_id":"c1","status":"success","records":-1}',
  '{"call_id":"c1","status":"success","records":1.5}',
  '{"call_id":"c1","status":"success","records":"3"}',
  '{"call_id":"c1","status":"success","usage":null}',
  '{"call_id":"c1","status":"success","usage":[]}',
  '{"call_id":"c1","status":"success","usage":{"cost":-0.5}}',
  '{"call_id":"c1","status":"success","usage":{"cost":"1"}}',
  '{"call_id":"c1","status":"success","usage":{"tokens":1.5}}',
  '{"call_id":"c1","status":"success","usage":{"tokens":-1}}',
  '{"call_id":"c1","status":"success","usage":{"other":1}}',
  '{"call_id":"c1","status":"success","more":true}',
];

const VALID_MANIFEST = ['{"token":"t"}', `{"token":"${'a'.repeat(8192)}"}`];
const INVALID_MANIFEST = ['{}', '{"token":""}', '{"token":2}', '{"token":"t","tool":"x"}', `{"token":"${'a'.repeat(8193)}"}`];

const cases = [
  { name: 'authorize', schema: authorizeBody, fast: fastAuthorizeBody, valid: VALID_AUTHORIZE, invalid: INVALID_AUTHORIZE },
  { name: 'complete', schema: completeBody, fast: fastCompleteBody, valid: VALID_COMPLETE, invalid: INVALID_COMPLETE },
  { name: 'manifest', schema: manifestBody, fast: fastManifestBody, valid: VALID_MANIFEST, invalid: INVALID_MANIFEST },
] as const;

describe.each(cases)('the compiled $name validator', ({ schema, fast, valid, invalid }) => {
  it.each(titled(valid))('accepts %s with the value zod returns', (_title, json) => {
    const parsed = (schema as { safeParse(v: unknown): { success: boolean; data?: unknown } }).safeParse(body(json));
    expect(parsed.success).toBe(true);
    expect((fast as (b: Record<string, unknown>) => unknown)(body(json))).toStrictEqual(parsed.data);
  });

  it.each(titled(invalid))('leaves %s to zod, which refuses it', (_title, json) => {
    expect((fast as (b: Record<string, unknown>) => unknown)(body(json))).toBeNull();
    expect((schema as { safeParse(v: unknown): { success: boolean } }).safeParse(body(json)).success).toBe(false);
  });

  it('never accepts a body zod refuses, over many mutations of the valid ones', () => {
    const values: unknown[] = ['', 'x', 'a b', 'c'.repeat(129), 'd'.repeat(257), 0, -1, 1.5, 2 ** 53 - 1, true, null, [], {}, { a: 1 }, { cost: 1 }, { tokens: -1 }];
    for (const json of valid) {
      const base = body(json);
      for (const key of [...Object.keys(base), 'token', 'tool', 'arguments', 'call_id', 'status', 'records', 'usage', 'tenant', 'tid', 'extra']) {
        for (const value of values) {
          const mutated = { ...base, [key]: value };
          const fastValue = (fast as (b: Record<string, unknown>) => unknown)(mutated);
          if (fastValue === null) continue;
          const parsed = (schema as { safeParse(v: unknown): { success: boolean; data?: unknown } }).safeParse(mutated);
          expect({ key, value, accepted: parsed.success }).toEqual({ key, value, accepted: true });
          expect(fastValue).toStrictEqual(parsed.data);
        }
      }
    }
  });
});

describe('readBody', () => {
  it('words a refusal as the schema does (the field at fault)', () => {
    expect(() => readBody(authorizeBody, fastAuthorizeBody, body('{"token":"t"}'))).toThrow(/tool/);
    expect(() => readBody(completeBody, fastCompleteBody, body('{"call_id":"c1","status":"ok"}'))).toThrow(/status/);
  });

  it('reads no body as {} (the answer names the first missing field)', () => {
    expect(() => readBody(manifestBody, fastManifestBody, undefined)).toThrow(/token/);
  });

  it('keeps the arguments object itself (checked in place, never rebuilt)', () => {
    const b = body('{"token":"t","tool":"x","arguments":{"a":{"b":1}}}');
    expect(readBody(authorizeBody, fastAuthorizeBody, b).arguments).toBe(b.arguments);
  });
});
