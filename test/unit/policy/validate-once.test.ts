import { describeIssues, parsePolicy, PolicyError } from '../../../src/policy/load';
import { policySchema } from '../../../src/policy/schema';

/**
 * Identical policy leaves are validated once per load and shared (src/policy/validate-once.ts). What
 * must hold: sharing never crosses an identity (tenant, principal, credential), and a policy with
 * faults is refused with exactly the issues the plain schema gives (every copy, its own path, in order).
 */

const digest = (c: string) => c.repeat(64);

function twoTenants() {
  const tenant = (t: string, secret: string) => ({
    principals: { agent: { secret_sha256: digest(secret), tools: ['query_crm', 'export_report'] } },
    tools: {
      query_crm: { credential: 'crm', resource: { arg: 'path', prefix: `${t}/` } },
      export_report: { credential: 'crm', max_records: 1000 },
    },
    credentials: { crm: { source: 'local', name: 'crm' } },
  });
  return parsePolicy({
    servers: { 'crm-mcp': { key_sha256: digest('c'), tools: ['query_crm', 'export_report'] } },
    tenants: { acme: tenant('acme', 'a'), globex: tenant('globex', 'b') },
  });
}

test('identical tool settings and tool lists of different tenants are one frozen object', () => {
  const policy = twoTenants();
  const [acme, globex] = [policy.tenants.acme!, policy.tenants.globex!];
  expect(acme.tools.export_report).toBe(globex.tools.export_report);
  expect(acme.principals.agent!.tools).toBe(globex.principals.agent!.tools);
  expect(acme.principals.agent!.tools).toBe(policy.servers['crm-mcp']!.tools);
  expect(acme.quotas).toBe(globex.quotas);
  expect(Object.isFrozen(acme.tools.export_report)).toBe(true);
});

test('settings that differ (a tenant prefix) stay apart, and tenant, principal and credential objects are never shared', () => {
  const policy = twoTenants();
  const [acme, globex] = [policy.tenants.acme!, policy.tenants.globex!];
  expect(acme.tools.query_crm!.resource!.prefix).toBe('acme/');
  expect(globex.tools.query_crm!.resource!.prefix).toBe('globex/');
  expect(acme.principals.agent).not.toBe(globex.principals.agent);
  expect(acme.credentials.crm).not.toBe(globex.credentials.crm);
  expect(acme.tools).not.toBe(globex.tools);
});

function refusal(raw: unknown): string[] {
  try {
    parsePolicy(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return (err as PolicyError).issues;
  }
  throw new Error('expected the policy to be refused');
}

/** What the plain schema says, without the memo (a wrapped schema outside a load just validates). */
function plainIssues(raw: unknown): string[] {
  const result = policySchema.safeParse(raw);
  expect(result.success).toBe(false);
  return describeIssues(result.error!, raw);
}

function tenants(count: number, tool: (i: number) => unknown, extra: Record<string, unknown> = {}) {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    out[`t${i}`] = {
      principals: { agent: { secret_sha256: digest('a'), tools: ['query_crm', 'export_report'] } },
      tools: { query_crm: tool(i), export_report: { credential: 'crm' }, ...extra },
      credentials: { crm: { source: 'local', name: 'crm' } },
    };
  }
  return { tenants: out };
}

describe('a refused policy names every faulty copy, as the plain schema does', () => {
  const faults: Array<[string, unknown]> = [
    ['the same bad tool in every tenant', tenants(3, () => ({ credential: 'crm', approval: 'yes' }))],
    ['an unknown key in identical copies', tenants(3, () => ({ credential: 'crm', bogus: 1 }))],
    ['a valid copy first, then a bad one', tenants(3, (i) => (i === 1 ? { credential: 'crm', cost: -1 } : { credential: 'crm' }))],
    ['a bad copy first, then valid ones', tenants(3, (i) => (i === 0 ? { credential: 'crm', cost: -1 } : { credential: 'crm' }))],
    ['a missing credential, then the same entry valid elsewhere', tenants(2, (i) => (i === 0 ? {} : { credential: 'crm' }))],
    ['a bad tool name among valid ones', tenants(2, () => ({ credential: 'crm' }), { 'bad name': { credential: 'crm' } })],
    ['a tool record that is not an object', { tenants: { t0: { tools: ['query_crm'] } } }],
    ['a tool entry that is null', tenants(2, () => null)],
    ['a bad tool list in one principal of two identical tenants', (() => {
      const raw = tenants(2, () => ({ credential: 'crm' }));
      (raw.tenants.t1 as { principals: { agent: { tools: unknown } } }).principals.agent.tools = ['query_crm', 7];
      return raw;
    })()],
    ['bad quotas repeated', (() => {
      const raw = tenants(2, () => ({ credential: 'crm' }));
      for (const t of Object.values(raw.tenants)) (t as Record<string, unknown>).quotas = { concurrency: 0 };
      return raw;
    })()],
    ['a dangling reference from shared settings', tenants(2, () => ({ credential: 'nope' }))],
  ];
  it.each(faults)('%s', (_name, raw) => {
    const issues = refusal(raw);
    expect(issues).toEqual(plainIssues(raw));
    expect(issues.length).toBeGreaterThan(0);
  });

  it('reports each copy at its own path', () => {
    expect(refusal(tenants(3, () => ({ credential: 'crm', approval: 'yes' })))).toEqual([
      'tenants.t0.tools.query_crm.approval: Expected boolean, received string',
      'tenants.t1.tools.query_crm.approval: Expected boolean, received string',
      'tenants.t2.tools.query_crm.approval: Expected boolean, received string',
    ]);
  });
});

test('a "__proto__" tool name from JSON is dropped as the plain schema drops it, and never becomes a prototype', () => {
  const raw = JSON.parse('{"tenants":{"t0":{"tools":{"__proto__":{"credential":"crm"},"a":{"credential":"crm"}},"credentials":{"crm":{"source":"local","name":"crm"}}}}}');
  const tools = parsePolicy(raw).tenants.t0!.tools;
  expect(Object.getOwnPropertyNames(tools)).toEqual(Object.getOwnPropertyNames(policySchema.parse(raw).tenants.t0!.tools));
  expect(Object.getOwnPropertyNames(tools)).toEqual(['a']);
  expect(Object.getPrototypeOf(tools)).toBe(Object.prototype);
});

test('each load validates afresh: a value changed between two loads is seen', () => {
  const raw = tenants(2, () => ({ credential: 'crm' }));
  expect(parsePolicy(raw).tenants.t0!.tools.query_crm!.approval).toBe(false);
  (raw.tenants.t0 as { tools: Record<string, unknown> }).tools.query_crm = { credential: 'crm', approval: true };
  const second = parsePolicy(raw);
  expect(second.tenants.t0!.tools.query_crm!.approval).toBe(true);
  expect(second.tenants.t1!.tools.query_crm!.approval).toBe(false);
});

test('the parsed policy equals what the plain schema gives, key order included', () => {
  const raw = tenants(3, (i) => ({ credential: 'crm', resource: { arg: 'path', prefix: `t${i}/` } }), { zeta: { credential: 'crm' }, alpha: { credential: 'crm', cost: 2 } });
  const plain = policySchema.parse(raw);
  const loaded = parsePolicy(raw);
  expect(loaded).toEqual(plain);
  expect(Object.keys(loaded.tenants.t1!.tools)).toEqual(['query_crm', 'export_report', 'zeta', 'alpha']);
});

test('a value close to the one the same key had in the previous tenant is validated on its own', () => {
  const variants = [
    { credential: 'crm', inject: { a: 1, b: 2 } },
    { credential: 'crm', inject: { b: 2, a: 1 } },
    { credential: 'crm', inject: { a: 1, b: 2, c: null } },
    { credential: 'crm', inject: { a: [1], b: 2 } },
    { credential: 'crm', inject: { a: { 0: 1 }, b: 2 } },
    { credential: 'crm', inject: { a: '1', b: 2 } },
    { credential: 'crm', inject: { a: 1, b: 2 } },
  ];
  const policy = parsePolicy(tenants(variants.length, (i) => variants[i]));
  variants.forEach((variant, i) => {
    const inject = policy.tenants[`t${i}`]!.tools.query_crm!.inject!;
    expect(inject).toEqual(variant.inject);
    expect(Object.keys(inject)).toEqual(Object.keys(variant.inject));
    expect(Array.isArray(inject.a)).toBe(Array.isArray(variant.inject.a));
  });
  expect(policy.tenants.t6!.tools.query_crm).toBe(policy.tenants.t0!.tools.query_crm);
  expect(Object.isFrozen(policy.tenants.t3!.tools.query_crm!.inject!.a)).toBe(true);
});

test('a bad value right after a good one under the same key is refused at its own path', () => {
  const raw = tenants(3, (i) => (i === 1 ? { credential: 'crm', cost: '1' } : { credential: 'crm', cost: 1 }));
  expect(refusal(raw)).toEqual(['tenants.t1.tools.query_crm.cost: Expected number, received string']);
  expect(refusal(raw)).toEqual(plainIssues(raw));
});
