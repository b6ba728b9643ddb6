import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARGUMENT_KEYS_DIR } from '../../src/argument-keys/file-argument-key-storage';
import { argumentKeyContext } from '../../src/argument-keys/argument-key-storage';
import { canonicalJson } from '../../src/crypto/hash';
import { open } from '../../src/crypto/envelope';
import { loadOrCreateMasterKey } from '../../src/crypto/master-key';
import { startHarness, type Harness } from '../support/broker-harness';
import { ensureBuiltCli, runCli } from '../support/built-cli';
import { auditEvents, callId, expectAllow, expectDeny } from '../support/isolation-assertions';
import { findLeaks } from '../support/leak-scan';
import { until } from '../support/until';

/**
 * `arguments_mac` is a keyed MAC per tenant, not a digest: someone who reads the audit (or an approval
 * list) and hashes a guess of the arguments learns nothing, nor by computing the MAC under another
 * tenant's key; inside one tenant equal arguments still compare equal, across a restart too, and an
 * approval still matches its exact call. The key is stored only wrapped (master key here), never shows
 * in a log, file, audit record or answer, and `bulkhead tenant shred` makes it unusable: that tenant's
 * calls are refused `tenant_shredded`, live and after a restart, while the other tenants carry on.
 */
jest.setTimeout(90_000);

let h: Harness;
let rawPolicy: any;
let policyFile: string;
const report = { report: 'q4-revenue', format: 'csv' };
// The guessable argument a reviewer recovered from the audit when it held a plain SHA-256.
const guesses = ['ceo@acme.example', 'cfo@acme.example', 'board@acme.example'].map((to) => ({ to, subject: 'Q4', body: 'numbers attached' }));
const secretEmail = guesses[1]!;

beforeAll(async () => {
  await ensureBuiltCli();
  h = await startHarness({
    overrides: (raw) => {
      // Every call re-reads the stored key: a shred by the CLI is seen by the next call, not a minute later.
      raw.broker.data_key_cache = '1ms';
      rawPolicy = structuredClone(raw);
    },
  });
  policyFile = join(h.dataDir, 'policy.json');
  await writeFile(policyFile, JSON.stringify(rawPolicy));
});
afterAll(async () => {
  await h?.close();
});

const exportCall = async (tenant: string, args: Record<string, unknown> = report) =>
  h.authorize('crm-mcp', { token: await h.token(`${tenant}-agent`, 'crm-mcp'), tool: 'export_report', arguments: args, call_id: callId(`mac-${tenant}`) });
const recordOf = async (tenant: string, id: string) => (await auditEvents(h, tenant)).find((e) => e.call_id === id && e.decision === 'allow');

async function macOfCall(tenant: string, args: Record<string, unknown> = report): Promise<string> {
  const answer = await exportCall(tenant, args);
  expectAllow(h, answer, tenant);
  const record = await recordOf(tenant, answer.body.call_id);
  expect(record).not.toHaveProperty('arguments_sha256');
  expect(record.arguments_mac).toMatch(/^[0-9a-f]{64}$/);
  return record.arguments_mac;
}

/** The tenant's argument key in the clear, as only the broker (holding the master key) can open it. */
async function argumentKeyOf(tenant: string): Promise<Buffer> {
  const stored = JSON.parse(await readFile(join(h.dataDir, ARGUMENT_KEYS_DIR, `${tenant}.json`), 'utf8'));
  expect(stored.kek).toBe('master');
  return open(await loadOrCreateMasterKey(h.dataDir), stored.wrapped, argumentKeyContext(tenant));
}

describe('equal inside a tenant, different across tenants', () => {
  it('gives equal arguments of one tenant the same MAC, call after call and across a restart', async () => {
    const first = await macOfCall('acme');
    expect(await macOfCall('acme')).toBe(first);
    // Key order is not part of the arguments' meaning.
    expect(await macOfCall('acme', { format: 'csv', report: 'q4-revenue' })).toBe(first);
    expect(await macOfCall('acme', { ...report, format: 'pdf' })).not.toBe(first);
    await h.restart();
    expect(await macOfCall('acme')).toBe(first);
  });

  it('gives the same arguments different MACs in two tenants', async () => {
    const [acme, globex, initech] = [await macOfCall('acme'), await macOfCall('globex'), await macOfCall('initech')];
    expect(new Set([acme, globex, initech]).size).toBe(3);
  });

  it('keeps one key per tenant, each wrapped under the master key with a context naming its tenant', async () => {
    const files = (await readdir(join(h.dataDir, ARGUMENT_KEYS_DIR))).sort();
    expect(files).toEqual(['acme.json', 'globex.json', 'initech.json']);
    const keys = await Promise.all(['acme', 'globex', 'initech'].map(argumentKeyOf));
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(3);
    // acme's wrapped key copied into globex's file does not open as globex's.
    const acmeStored = JSON.parse(await readFile(join(h.dataDir, ARGUMENT_KEYS_DIR, 'acme.json'), 'utf8'));
    const masterKey = await loadOrCreateMasterKey(h.dataDir);
    expect(() => open(masterKey, acmeStored.wrapped, argumentKeyContext('globex'))).toThrow();
    expect(() => open(Buffer.alloc(32), acmeStored.wrapped, argumentKeyContext('acme'))).toThrow();
  });
});

describe('a dictionary attack on the audit no longer works; approvals still match', () => {
  let token: string;
  let recorded: string;
  let approvalId: string;
  const send = (args: Record<string, unknown>) => h.authorize('crm-mcp', { token, tool: 'send_email', arguments: args, call_id: callId('mac-send') });

  beforeAll(async () => {
    token = await h.token('acme-agent', 'crm-mcp');
    const asked = await send(secretEmail);
    expectDeny(h, asked, 403, 'approval_required');
    approvalId = asked.body.approval_id;
    const listed = await h.get('/v1/approvals?tenant=acme', h.operatorToken);
    recorded = listed.body.approvals.find((a: { id: string }) => a.id === approvalId).arguments_mac;
    expect(recorded).toMatch(/^[0-9a-f]{64}$/);
  });

  it('matches no SHA-256 of any guess (hex or base64url), the right guess included', async () => {
    for (const guess of guesses) {
      const digest = createHash('sha256').update(canonicalJson(guess)).digest();
      expect([digest.toString('hex'), digest.toString('base64url')]).not.toContain(recorded);
    }
    const everything = JSON.stringify(await auditEvents(h, 'acme'));
    for (const guess of guesses) expect(everything).not.toContain(createHash('sha256').update(canonicalJson(guess)).digest('hex'));
  });

  it("matches no MAC of the guess under another tenant's key (globex cannot test acme's arguments)", async () => {
    for (const other of ['globex', 'initech']) {
      for (const guess of guesses) expect(await h.broker.argumentMacs.mac(other, guess)).not.toBe(recorded);
    }
    // Only acme's own key reproduces it: what the broker itself matches approvals with.
    expect(await h.broker.argumentMacs.mac('acme', secretEmail)).toBe(recorded);
  });

  it('lets the approved call through once, for those exact arguments only, recorded with the MAC it was approved for', async () => {
    expect((await h.post(`/v1/approvals/${approvalId}/approve`, {}, h.operatorToken)).status).toBe(200);
    const other = await send({ ...secretEmail, body: 'other numbers' });
    expectDeny(h, other, 403, 'approval_required');
    expect(other.body.approval_id).not.toBe(approvalId);
    const through = await send({ body: secretEmail.body, subject: secretEmail.subject, to: secretEmail.to });
    expectAllow(h, through, 'acme');
    expect((await recordOf('acme', through.body.call_id)).arguments_mac).toBe(recorded);
    const decided = (await auditEvents(h, 'acme')).find((e) => e.type === 'approval' && e.detail === approvalId);
    expect(decided).toMatchObject({ status: 'approved', arguments_mac: recorded });
    // Used once: the same call asks again.
    expectDeny(h, await send(secretEmail), 403, 'approval_required');
  });
});

describe('the key itself never leaves the broker', () => {
  it('is in no log line, file, audit record or answer, in any encoding (the leak scan), nor raw in any file', async () => {
    const extra = [];
    for (const tenant of ['acme', 'globex', 'initech']) {
      const key = await argumentKeyOf(tenant);
      extra.push({ label: `${tenant} argument key (hex)`, value: key.toString('hex') }, { label: `${tenant} argument key (base64)`, value: key.toString('base64') }, { label: `${tenant} argument key (base64url)`, value: key.toString('base64url') });
      const files = await readdir(h.dataDir, { recursive: true, withFileTypes: true });
      for (const f of files.filter((e) => e.isFile())) expect({ file: f.name, raw: (await readFile(join(f.parentPath, f.name))).includes(key) }).toEqual({ file: f.name, raw: false });
    }
    expect(await findLeaks(h, extra)).toEqual([]);
  });
});

describe('bulkhead tenant shred makes the key unusable', () => {
  it("refuses the shredded tenant's next call tenant_shredded (403), and records it, while the others carry on", async () => {
    const acmeToken = await h.token('acme-agent', 'crm-mcp');
    expectAllow(h, await h.authorize('crm-mcp', { token: acmeToken, tool: 'export_report', arguments: report, call_id: callId('mac-before-shred') }), 'acme');
    const dry = await runCli(['tenant', 'shred', 'acme', '--config', policyFile, '--data-dir', h.dataDir]);
    expect(dry.code).toBe(2);
    expect(dry.stderr).toContain('argument key');
    const shred = await runCli(['tenant', 'shred', 'acme', '--yes', '--config', policyFile, '--data-dir', h.dataDir]);
    expect([shred.code, shred.stderr]).toEqual([0, '']);
    expect(shred.stdout).toContain(`shredded tenant "acme"'s argument key in ${h.dataDir}`);
    const stored = JSON.parse(await readFile(join(h.dataDir, ARGUMENT_KEYS_DIR, 'acme.json'), 'utf8'));
    expect(Object.keys(stored)).toEqual(['shredded_at']);

    const id = callId('mac-after-shred');
    let answer: Awaited<ReturnType<Harness['authorize']>> | undefined;
    await until(async () => {
      answer = await h.authorize('crm-mcp', { token: acmeToken, tool: 'export_report', arguments: report, call_id: id });
      return answer.body.decision === 'deny';
    }, 'acme was never refused after the shred');
    expectDeny(h, answer!, 403, 'tenant_shredded');
    expect(answer!.body.message).toContain('shredded');
    // The refusal is in acme's own stream, without a MAC (there is no key to make one).
    const denied = (await auditEvents(h, 'acme')).find((e) => e.call_id === id);
    expect(denied).toMatchObject({ decision: 'deny', reason: 'tenant_shredded' });
    expect(denied).not.toHaveProperty('arguments_mac');
    // Every tool, approval or not: the MAC comes before anything else is spent.
    expectDeny(h, await h.authorize('crm-mcp', { token: acmeToken, tool: 'send_email', arguments: secretEmail, call_id: callId('mac-shred-mail') }), 403, 'tenant_shredded');
    expect(await macOfCall('globex')).toMatch(/^[0-9a-f]{64}$/);
    expect(await macOfCall('initech')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('stays shredded after a restart: no new key is made for the tenant', async () => {
    await h.restart();
    const token = await h.token('acme-agent', 'crm-mcp');
    expectDeny(h, await h.authorize('crm-mcp', { token, tool: 'export_report', arguments: report, call_id: callId('mac-shred-restart') }), 403, 'tenant_shredded');
    expect(Object.keys(JSON.parse(await readFile(join(h.dataDir, ARGUMENT_KEYS_DIR, 'acme.json'), 'utf8')))).toEqual(['shredded_at']);
    expect(await macOfCall('globex')).toMatch(/^[0-9a-f]{64}$/);
  });
});
