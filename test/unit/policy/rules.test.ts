import { parsePolicy } from '../../../src/policy/load';
import { refusal, validPolicy } from './policy-fixtures';

/** The rules a policy must follow beyond its shape: hashes, lifetimes, ids, tenant binding, freezing. */

function breaking(change: (p: any) => void): unknown {
  const raw = validPolicy();
  change(raw);
  return raw;
}

describe('secrets appear only as SHA-256 hex digests', () => {
  it.each([
    ['upper-case hex', 'AB'.repeat(32)],
    ['63 characters', 'a'.repeat(63)],
    ['65 characters', 'a'.repeat(65)],
    ['not hex', 'g'.repeat(64)],
    ['a plaintext secret', 'correct horse battery staple'],
    ['a number', 12345],
  ])('refuses %s as a hash, naming where', (_what, value) => {
    const message = 'must be a lowercase SHA-256 hex digest (64 characters)';
    expect(refusal(breaking((p) => (p.operators.ops.token_sha256 = value)))).toMatch(/^policy\.yaml: operators\.ops\.token_sha256: /);
    expect(refusal(breaking((p) => (p.servers['crm-mcp'].key_sha256 = value)))).toMatch(/^policy\.yaml: servers\.crm-mcp\.key_sha256: /);
    expect(refusal(breaking((p) => (p.tenants.acme.principals['acme-agent'].secret_sha256 = value)))).toMatch(
      /^policy\.yaml: tenants\.acme\.principals\.acme-agent\.secret_sha256: /,
    );
    if (typeof value === 'string') expect(refusal(breaking((p) => (p.operators.ops.token_sha256 = value)))).toContain(message);
  });
});

describe('token lifetimes', () => {
  it('refuses a token_ttl longer than max_token_ttl', () => {
    expect(refusal(breaking((p) => (p.broker = { token_ttl: '30m', max_token_ttl: '20m' })))).toBe('policy.yaml: broker.token_ttl: must not exceed max_token_ttl');
  });

  it('refuses a max_token_ttl over 60 minutes', () => {
    expect(refusal(breaking((p) => (p.broker = { max_token_ttl: '61m' })))).toBe('policy.yaml: broker.max_token_ttl: must be at most 60m');
    expect(refusal(breaking((p) => (p.broker = { max_token_ttl: '2h', token_ttl: '15m' })))).toBe('policy.yaml: broker.max_token_ttl: must be at most 60m');
  });

  it('accepts exactly 60 minutes, in any unit', () => {
    for (const max of ['60m', '1h', '3600s', 3600]) expect(parsePolicy(breaking((p) => (p.broker = { max_token_ttl: max }))).broker.max_token_ttl).toBe(3_600_000);
  });

  it.each(['15 minutes', '0s', '-5m', '', 'PT15M'])('refuses the duration %p', (value) => {
    expect(refusal(breaking((p) => (p.broker = { token_ttl: value })))).toMatch(/^policy\.yaml: broker\.token_ttl: must be a positive duration/);
  });
});

describe('ids, values and tenant binding', () => {
  it('refuses a tenant id that is not an id, naming it', () => {
    expect(refusal(breaking((p) => (p.tenants['acme corp'] = {})))).toMatch(/^policy\.yaml: tenants\.acme corp: must be 1-64 characters/);
    expect(refusal(breaking((p) => (p.tenants['../globex'] = {})))).toMatch(/^policy\.yaml: tenants\.\.\.\/globex: must be 1-64 characters/);
  });

  it('refuses an unknown credential source, naming the field', () => {
    expect(refusal(breaking((p) => (p.tenants.acme.credentials.crm = { source: 'ftp', name: 'crm' })))).toMatch(/^policy\.yaml: tenants\.acme\.credentials\.crm\.source: /);
  });

  it('refuses a tool that injects a tenant identifier', () => {
    expect(refusal(breaking((p) => (p.tenants.acme.tools.query_crm.inject = { tenant_id: 'acme' })))).toBe(
      'policy.yaml: tenants.acme.tools.query_crm.inject: must not inject tenant identifiers; the tenant comes from the token',
    );
  });

  it.each([['TENANT_ID'], ['ｔｉｄ'], ['Tenant-Id']])('refuses a tool that injects a tenant identifier spelled %j', (key) => {
    expect(refusal(breaking((p) => (p.tenants.acme.tools.query_crm.inject = { [key]: 'acme' })))).toBe(
      'policy.yaml: tenants.acme.tools.query_crm.inject: must not inject tenant identifiers; the tenant comes from the token',
    );
  });

  it('refuses two injected fields, or an injected field and the resource argument, that fold to one name', () => {
    expect(refusal(breaking((p) => (p.tenants.acme.tools.query_crm.inject = { region: 'eu', REGION: 'us' })))).toBe(
      'policy.yaml: tenants.acme.tools.query_crm.inject: "region" and "REGION" are one field to a case-insensitive reader',
    );
    expect(refusal(breaking((p) => (p.tenants.acme.tools.query_crm.inject = { Path: 'acme/x' })))).toBe(
      'policy.yaml: tenants.acme.tools.query_crm.inject: "Path" and "path" are one field to a case-insensitive reader',
    );
  });

  it('refuses two tenants that claim the same IdP issuer', () => {
    const idp = { issuer: 'https://idp.example', jwks_uri: 'https://idp.example/jwks', audience: 'bulkhead' };
    const raw = breaking((p) => {
      p.tenants.acme.idp = idp;
      p.tenants.globex = { idp, tools: {}, credentials: {} };
    });
    expect(refusal(raw)).toBe('policy.yaml: tenants.globex.idp.issuer: issuer already belongs to tenant "acme"');
  });

  it('refuses wrong value types with the path and the type', () => {
    expect(refusal(breaking((p) => (p.tenants.acme.quotas.concurrency = '8')))).toBe('policy.yaml: tenants.acme.quotas.concurrency: Expected number, received string');
    expect(refusal(breaking((p) => (p.tenants.acme.tools.export_report.max_records = 0)))).toMatch(/^policy\.yaml: tenants\.acme\.tools\.export_report\.max_records: /);
    expect(refusal(breaking((p) => (p.broker.issuer = 'not a url')))).toMatch(/^policy\.yaml: broker\.issuer: /);
    expect(refusal(breaking((p) => (p.broker.tls.mode = 'on')))).toMatch(/^policy\.yaml: broker\.tls\.mode: /);
    expect(refusal(breaking((p) => (p.broker.body_limit = '1gb')))).toBe('policy.yaml: broker.body_limit: must be a size such as "64kb" or "1mb"');
  });

  it('looks principals and tools up as own keys only ("constructor" is not a tool)', () => {
    expect(refusal(breaking((p) => (p.tenants.acme.principals['acme-agent'].tools = ['constructor'])))).toBe(
      'policy.yaml: tenants.acme.principals.acme-agent.tools.0: unknown tool "constructor"',
    );
    expect(refusal(breaking((p) => (p.tenants.acme.tools.query_crm.credential = 'toString')))).toBe(
      'policy.yaml: tenants.acme.tools.query_crm.credential: unknown credential "toString"',
    );
  });
});

describe('the loaded policy is deeply frozen', () => {
  it('cannot be changed at any depth', () => {
    const policy = parsePolicy(validPolicy()) as any;
    const nodes = [
      policy,
      policy.broker,
      policy.broker.rotation,
      policy.servers['crm-mcp'].tools,
      policy.tenants.acme.principals['acme-agent'],
      policy.tenants.acme.principals['acme-agent'].tools,
      policy.tenants.acme.tools.query_crm.inject,
      policy.tenants.acme.tools.query_crm.resource,
      policy.tenants.acme.credentials.crm,
    ];
    for (const node of nodes) expect(Object.isFrozen(node)).toBe(true);
    // Test files are strict-mode modules, so a write to a frozen object throws rather than being ignored.
    expect(() => (policy.tenants.acme.principals['acme-agent'].tools[0] = 'export_report')).toThrow(TypeError);
    expect(() => policy.tenants.acme.principals['acme-agent'].tools.push('send_email')).toThrow(TypeError);
    expect(() => (policy.tenants.globex = {})).toThrow(TypeError);
    expect(() => delete policy.tenants.acme.tools.query_crm.resource).toThrow(TypeError);
    expect(policy.tenants.acme.principals['acme-agent'].tools).toEqual(['query_crm', 'export_report']);
  });

  it('is not changed by later changes to the raw input', () => {
    const raw = validPolicy();
    const policy = parsePolicy(raw);
    raw.tenants.acme.principals['acme-agent'].tools.push('send_email');
    raw.tenants.acme.tools.query_crm.inject.region = 'us-east-1';
    expect(policy.tenants.acme!.principals['acme-agent']!.tools).toEqual(['query_crm', 'export_report']);
    expect(policy.tenants.acme!.tools.query_crm!.inject).toEqual({ region: 'eu-west-1' });
  });
});
