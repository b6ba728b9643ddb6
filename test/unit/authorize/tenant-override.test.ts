import { applyInject, findTenantOverride, MAX_ARGUMENT_DEPTH, MAX_ARGUMENT_NODES } from '../../../src/authorize/tenant-override';

describe('findTenantOverride denies arguments that name another tenant', () => {
  const overrides: Array<[string, unknown, string]> = [
    ['top-level tenant_id', { tenant_id: 'globex' }, 'tenant_id'],
    ['top-level tid', { q: 'x', tid: 'globex' }, 'tid'],
    ['camelCase tenantId', { tenantId: 'globex' }, 'tenantId'],
    ['plain tenant', { tenant: 'globex' }, 'tenant'],
    ['nested in an object', { filter: { owner: { tenant_id: 'globex' } } }, 'filter.owner.tenant_id'],
    ['inside an array', { items: [{ id: 1 }, { id: 2, tid: 'globex' }] }, 'items[1].tid'],
    ['in an array of arrays', { rows: [[{ tenant: 'globex' }]] }, 'rows[0][0].tenant'],
    ['different case (Tenant_ID)', { Tenant_ID: 'globex' }, 'Tenant_ID'],
    ['upper case TID', { TID: 'globex' }, 'TID'],
    ['kebab case (tenant-id)', { 'tenant-id': 'globex' }, '["tenant-id"]'],
    ['fullwidth key (ｔｅｎａｎｔ＿ｉｄ)', { 'ｔｅｎａｎｔ＿ｉｄ': 'globex' }, '["ｔｅｎａｎｔ＿ｉｄ"]'],
    ['zero-width space inside the key', { 'ten\u200bant': 'globex' }, '["ten\u200bant"]'],
    ['same tenant in another case is not the same tenant', { tenant: 'ACME' }, 'tenant'],
    ['fullwidth spelling of the same tenant', { tenant: 'ａｃｍｅ' }, 'tenant'],
    ['null value (could mean "all tenants" downstream)', { tenant_id: null }, 'tenant_id'],
    ['an array of tenants', { tenant: ['acme', 'globex'] }, 'tenant'],
    ['an object value', { tenant: { id: 'acme' } }, 'tenant'],
    ['the first violation in document order', { a: { tid: 'one' }, b: { tid: 'two' } }, 'a.tid'],
    ['own __proto__ key from JSON', JSON.parse('{"__proto__": {"tenant": "globex"}}'), '__proto__.tenant'],
  ];
  test.each(overrides)('%s', (_name, args, path) => {
    expect(findTenantOverride(args, 'acme')).toBe(path);
  });
});

describe('findTenantOverride lets through arguments bound to the token tenant', () => {
  test('a tenant key equal to the token tenant passes, at any depth', () => {
    expect(findTenantOverride({ tenant_id: 'acme', filter: { tid: 'acme' }, list: [{ tenantId: 'acme' }] }, 'acme')).toBeNull();
  });
  test('keys that merely contain "tenant" are not tenant keys', () => {
    expect(findTenantOverride({ tenant_name_hint: 'globex', subtenant: 'globex', tidy: 'globex' }, 'acme')).toBeNull();
  });
  test('a tenant name as a value under another key is not an override', () => {
    expect(findTenantOverride({ query: 'tenant_id=globex', names: ['globex'] }, 'acme')).toBeNull();
  });
  test('scalars and empty arguments pass', () => {
    expect(findTenantOverride({}, 'acme')).toBeNull();
    expect(findTenantOverride(null, 'acme')).toBeNull();
    expect(findTenantOverride('globex', 'acme')).toBeNull();
  });
});

describe('findTenantOverride refuses what it cannot fully check', () => {
  const nest = (levels: number) => {
    let v: unknown = { leaf: 1 };
    for (let i = 0; i < levels; i++) v = { n: v };
    return v;
  };
  test('nesting deeper than the bound is a violation', () => {
    expect(findTenantOverride(nest(MAX_ARGUMENT_DEPTH + 5), 'acme')).toBe('(too deep)');
  });
  test('nesting within the bound passes', () => {
    expect(findTenantOverride(nest(MAX_ARGUMENT_DEPTH - 2), 'acme')).toBeNull();
  });
  test('a tenant key hidden past the depth bound is not missed', () => {
    let v: unknown = { tenant: 'globex' };
    for (let i = 0; i < MAX_ARGUMENT_DEPTH + 1; i++) v = [v];
    expect(findTenantOverride(v, 'acme')).not.toBeNull();
  });
  test('arguments with more nodes than the bound are a violation', () => {
    const wide = { items: Array.from({ length: MAX_ARGUMENT_NODES + 1 }, (_, i) => i) };
    expect(findTenantOverride(wide, 'acme')).toBe('(too big)');
  });
});

describe('applyInject', () => {
  test('forces injected fields over the caller value', () => {
    const out = applyInject({ region: 'us-east-1', q: 'x' }, { region: 'eu-west-1' });
    expect(out).toStrictEqual({ region: 'eu-west-1', q: 'x' });
  });

  test('never mutates the caller arguments or the policy inject', () => {
    const args = { region: 'us-east-1', nested: { a: [1, 2] } };
    const inject = { region: 'eu-west-1', limits: { max: 5 } };
    const before = JSON.stringify({ args, inject });
    const out = applyInject(args, inject);
    (out.nested as { a: number[] }).a.push(3);
    (out.limits as { max: number }).max = 999;
    expect(JSON.stringify({ args, inject })).toBe(before);
    expect(out).not.toBe(args);
  });

  test('an injected __proto__ key becomes a field, not the prototype', () => {
    const out = applyInject({}, JSON.parse('{"__proto__": {"polluted": true}}'));
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect((out as { polluted?: boolean }).polluted).toBeUndefined();
    expect(Object.keys(out)).toEqual(['__proto__']);
  });

  test('a caller __proto__ key stays a plain field in the copy', () => {
    const out = applyInject(JSON.parse('{"__proto__": {"tenant": "globex"}}'), { region: 'eu-west-1' });
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__', 'region']);
    expect((out as { tenant?: string }).tenant).toBeUndefined();
  });

  test('without inject it still returns a deep copy', () => {
    const args = { a: { b: 1 } };
    const out = applyInject(args, undefined);
    expect(out).toEqual(args);
    expect(out.a).not.toBe(args.a);
  });
});
