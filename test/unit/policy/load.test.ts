import { loadPolicyFile, PolicyError } from '../../../src/policy/load';
import { tempDir, validPolicy, type TempDir } from './policy-fixtures';

/**
 * Loading a policy file: YAML and JSON alike, parsed once, validated, frozen; and every failure is one
 * PolicyError whose message starts with the file and names the path at fault.
 */

let tmp: TempDir;
beforeEach(async () => {
  tmp = await tempDir();
});
afterEach(() => tmp.cleanup());

function loadError(path: string): PolicyError {
  try {
    loadPolicyFile(path);
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyError);
    return err as PolicyError;
  }
  throw new Error(`expected ${path} to be refused`);
}

describe('formats', () => {
  it.each(['policy.yaml', 'policy.yml', 'policy.json', 'POLICY.JSON'])('loads %s into the same policy', async (name) => {
    const fromFile = loadPolicyFile(await tmp.write(name, validPolicy()));
    const fromYaml = loadPolicyFile(await tmp.write('reference.yaml', validPolicy()));
    expect(fromFile).toEqual(fromYaml);
    expect(fromFile.tenants.acme!.tools.query_crm!.credential).toBe('crm');
  });

  it('turns durations into milliseconds and fills defaults', async () => {
    const raw = validPolicy();
    raw.broker = { token_ttl: '90s', max_token_ttl: 1800 };
    delete raw.tenants.acme.quotas;
    const policy = loadPolicyFile(await tmp.write('p.yaml', raw));
    expect(policy.broker).toMatchObject({ token_ttl: 90_000, max_token_ttl: 1_800_000, clock_skew: 30_000, issuer: 'http://127.0.0.1:8700', body_limit: '64kb' });
    expect(policy.broker.rotation).toEqual({ signing_key: 86_400_000, certificate: 86_400_000, audit_key: 30 * 86_400_000 });
    expect(policy.broker.audit).toEqual({ checkpoint_every: 1000, checkpoint_interval: 60_000, security_denies_per_minute: 300 });
    expect(policy.tenants.acme!.quotas).toEqual({ calls_per_minute: 600, concurrency: 8, audited_denies_per_minute: 300 });
  });

  // DESIGN.md's example plus the per-tenant AppRole the schema requires for Vault credentials.
  it('loads the DESIGN.md example policy, YAML comments and all', async () => {
    const hash = 'ab'.repeat(32);
    const yaml = `
broker:
  issuer: "http://127.0.0.1:8700"
  token_ttl: 15m
  max_token_ttl: 60m
  rotation: { signing_key: 24h, certificate: 24h }      # tests shorten these to seconds
  tls: { mode: off }
  upstreams:
    vault: { address: "http://127.0.0.1:8200", auth: { approle: { role_id_file: /run/role, secret_id_file: /run/secret } } }
    aws:   { region: us-east-1, endpoint: "http://127.0.0.1:5000" }
operators: { ops: { token_sha256: "${hash}" } }
servers:
  crm-mcp: { key_sha256: "${hash}", tools: [query_crm, export_report, send_email] }
tenants:
  acme:
    principals:
      acme-agent: { secret_sha256: "${hash}", tools: [query_crm, export_report] }
    idp: { issuer: "https://idp.acme.example", jwks_uri: "https://idp.acme.example/jwks", audience: "bulkhead" }
    vault: { approle: { role_id_file: /run/acme/role, secret_id_file: /run/acme/secret } }
    tools:
      query_crm:
        credential: crm
        resource: { arg: path, prefix: "acme/" }
        inject:   { region: "eu-west-1" }
        approval: false
      export_report: { credential: crm, max_records: 1000 }
    credentials:
      crm: { source: vault, path: "secret/data/tenants/acme/crm" }
      mail: { source: aws, secret_id: "tenants/acme/mail" }
    quotas: { calls_per_minute: 600, concurrency: 8 }
`;
    const policy = loadPolicyFile(await tmp.write('design.yaml', yaml));
    expect(policy.broker.tls.mode).toBe('off');
    expect(policy.tenants.acme!.credentials.crm).toEqual({ source: 'vault', path: 'secret/data/tenants/acme/crm' });
    expect(policy.tenants.acme!.idp?.principal_claim).toBe('sub');
  });
});

describe('unreadable files', () => {
  it('names a missing file and the error code', () => {
    const missing = `${tmp.dir}/nope.yaml`;
    expect(loadError(missing).message).toBe(`${missing}: cannot read policy file (ENOENT)`);
  });

  it('names a YAML syntax error with its line', async () => {
    const path = await tmp.write('broken.yaml', 'tenants:\n  acme: { tools: [query_crm\n');
    expect(loadError(path).message).toMatch(new RegExp(`^${escape(path)}: not valid YAML: .*line`));
  });

  it('names a JSON syntax error', async () => {
    const path = await tmp.write('broken.json', '{"tenants": {"acme": }');
    expect(loadError(path).message).toMatch(new RegExp(`^${escape(path)}: not valid JSON: `));
  });

  it('refuses a YAML mapping with a duplicate key instead of letting the last one win', async () => {
    const hash = 'ab'.repeat(32);
    const path = await tmp.write('dup.yaml', `operators:\n  ops: { token_sha256: "${hash}" }\n  ops: { token_sha256: "${'cd'.repeat(32)}" }\n`);
    expect(loadError(path).message).toMatch(new RegExp(`^${escape(path)}: not valid YAML: .*unique`));
  });

  it.each([
    ['an alias inside the mapping it names', 'tenants:\n  acme: &t\n    tools: { q: { credential: crm, inject: { again: *t } } }\n'],
    ['an alias inside the list it names', 'servers: &s\n  crm-mcp: { key_sha256: x, tools: [*s] }\n'],
  ])('refuses %s (a cycle no JSON policy can have) with a PolicyError, not a stack overflow', async (_name, yaml) => {
    const path = await tmp.write('cycle.yaml', yaml);
    expect(loadError(path).message).toBe(`${path}: not valid YAML for a policy: an alias refers to a node that contains it (a policy is JSON data)`);
  });

  it('takes an alias that merely repeats a node elsewhere', async () => {
    const hash = 'ab'.repeat(32);
    const path = await tmp.write('alias.yaml', `servers:\n  crm-mcp: { key_sha256: "${hash}", tools: &list [query_crm] }\n  other-mcp: { key_sha256: "${'cd'.repeat(32)}", tools: *list }\n`);
    const policy = loadPolicyFile(path);
    expect(policy.servers['other-mcp']!.tools).toEqual(['query_crm']);
  });

  it('refuses a top level that is not a mapping', async () => {
    const path = await tmp.write('list.yaml', '- tenants\n- servers\n');
    expect(loadError(path).message).toBe(`${path}: (root): Expected object, received array`);
  });
});

describe('errors name the file and the path', () => {
  it.each([
    ['the root', (p: any) => (p.tenant = {}), '(root): unknown key "tenant"'],
    ['broker', (p: any) => (p.broker.token_tll = '5m'), 'broker: unknown key "token_tll"'],
    ['broker.rotation', (p: any) => (p.broker.rotation.signing = '1h'), 'broker.rotation: unknown key "signing"'],
    ['an operator', (p: any) => (p.operators.ops.token = 'x'), 'operators.ops: unknown key "token"'],
    ['a tenant', (p: any) => (p.tenants.acme.principal = {}), 'tenants.acme: unknown key "principal"'],
    ['a tool', (p: any) => (p.tenants.acme.tools.query_crm.credentials = 'crm'), 'tenants.acme.tools.query_crm: unknown key "credentials"'],
    ['a tool resource', (p: any) => (p.tenants.acme.tools.query_crm.resource.prefx = 'a/'), 'tenants.acme.tools.query_crm.resource: unknown key "prefx"'],
    ['a credential', (p: any) => (p.tenants.acme.credentials.crm.path = 'x'), 'tenants.acme.credentials.crm: unknown key "path"'],
    ['quotas', (p: any) => (p.tenants.acme.quotas.burst = 5), 'tenants.acme.quotas: unknown key "burst"'],
  ])('an unknown key in %s', async (_where, breakIt, expected) => {
    for (const name of ['p.yaml', 'p.json']) {
      const raw = validPolicy();
      breakIt(raw);
      const path = await tmp.write(name, raw);
      expect(loadError(path).message).toBe(`${path}: ${expected}`);
    }
  });

  it.each(['_security', '_Security', '_x'])('refuses a tenant named %s: the broker security stream\'s name can never be a tenant\'s', async (name) => {
    const raw = validPolicy();
    raw.tenants[name] = raw.tenants.acme;
    const path = await tmp.write('p.json', raw);
    expect(loadError(path).message).toMatch(/must be 1-64 characters of letters, digits, "\.", "_" or "-", starting with a letter or digit/);
  });

  it('lists every issue and counts the rest in the message', async () => {
    const raw = validPolicy();
    raw.extra = 1;
    raw.broker.bogus = 1;
    const error = loadError(await tmp.write('p.yaml', raw));
    expect(error.message).toMatch(/\(and 1 more\)$/);
    expect([...error.issues].sort()).toEqual(['(root): unknown key "extra"', 'broker: unknown key "bogus"']);
  });

  it('names a dangling credential reference', async () => {
    const raw = validPolicy();
    raw.tenants.acme.tools.query_crm.credential = 'crm2';
    const path = await tmp.write('p.yaml', raw);
    expect(loadError(path).message).toBe(`${path}: tenants.acme.tools.query_crm.credential: unknown credential "crm2"`);
  });

  it('names a principal granted a tool the tenant does not define', async () => {
    const raw = validPolicy();
    raw.tenants.acme.principals['acme-agent'].tools = ['query_crm', 'delete_crm'];
    const path = await tmp.write('p.yaml', raw);
    expect(loadError(path).message).toBe(`${path}: tenants.acme.principals.acme-agent.tools.1: unknown tool "delete_crm"`);
  });

  it('names a vault credential when broker.upstreams.vault is not configured', async () => {
    const raw = validPolicy();
    raw.tenants.acme.credentials.crm = { source: 'vault', path: 'secret/data/tenants/acme/crm' };
    raw.tenants.acme.vault = { approle: { role_id_file: '/run/acme/role', secret_id_file: '/run/acme/secret' } };
    const path = await tmp.write('p.json', raw);
    expect(loadError(path).message).toBe(`${path}: tenants.acme.credentials.crm.source: needs broker.upstreams.vault`);
  });

  it('names an aws credential when broker.upstreams.aws is not configured', async () => {
    const raw = validPolicy();
    raw.tenants.acme.credentials.crm = { source: 'aws', secret_id: 'tenants/acme/crm' };
    const path = await tmp.write('p.json', raw);
    expect(loadError(path).message).toBe(`${path}: tenants.acme.credentials.crm.source: needs broker.upstreams.aws`);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
