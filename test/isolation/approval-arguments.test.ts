import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { createScratchDatabase, deleteRedisPrefix, scratchPrefix } from '../../bench/scratch-state';
import type { Clock } from '../../src/clock';
import { initSchema } from '../../src/state/postgres/schema';
import { startHarness, type Harness } from '../support/broker-harness';
import { callId, expectDeny } from '../support/isolation-assertions';
import { describeWithUpstream, upstreamEnv } from '../support/upstreams';

/**
 * Operators see the effective arguments of a call waiting for approval, so nobody approves blind — and
 * nobody else ever sees them: they are sealed under the tenant's key for the approval's lifetime only.
 * Each test carries a fresh random marker in the arguments and looks for it everywhere it must not be:
 * the answers the agent's MCP server gets, the broker log, every file of the data dir (audit included),
 * and, scaled out, every Redis value and every PostgreSQL row. Deciding or expiring the approval deletes
 * the sealed copy; a sealed copy moved to another tenant's approval does not open.
 */
jest.setTimeout(90_000);

let offset = 0;
const clock: Clock = { now: () => Date.now() + offset };
const APPROVAL_TTL_MS = 15 * 60_000;

interface Deployment {
  replicas: Harness[];
  /** Every stored byte outside the data dirs (Redis values, PostgreSQL rows), as text. */
  sharedDump(): Promise<string>;
  redis?: Redis;
  prefix?: string;
  close(): Promise<void>;
}

async function embedded(): Promise<Deployment> {
  const h = await startHarness({ brokerOptions: { clock } });
  return { replicas: [h], sharedDump: async () => '', close: () => h.close() };
}

async function scaledOut(): Promise<Deployment> {
  const env = upstreamEnv();
  const db = await createScratchDatabase(env.DATABASE_URL, 'approval_arguments');
  const pool = new Pool({ connectionString: db.url });
  await initSchema(pool);
  const prefix = scratchPrefix('approval-args');
  const redis = new Redis(env.REDIS_URL);
  const brokerOptions = { clock, env: { BULKHEAD_MASTER_KEY: randomBytes(32).toString('base64') } };
  const a = await startHarness({ overrides: (p) => (p.broker.state = { redis_url: env.REDIS_URL, postgres_url: db.url, redis_prefix: prefix }), brokerOptions });
  const b = await startHarness({ replicaOf: a, brokerOptions });
  return {
    replicas: [a, b],
    redis,
    prefix,
    async sharedDump() {
      const parts: string[] = [];
      for (const key of await redis.keys(`${prefix}:*`)) {
        const type = await redis.type(key);
        if (type === 'string') parts.push(String(await redis.get(key)));
        else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
        else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
        else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, 0, -1)));
      }
      const tables = await pool.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE tablename LIKE 'bulkhead_%'");
      for (const { tablename } of tables.rows) parts.push(JSON.stringify((await pool.query(`SELECT * FROM ${tablename}`)).rows));
      return parts.join('\n');
    },
    async close() {
      await b.close();
      await a.close();
      redis.disconnect();
      await pool.end();
      await db.drop();
      await deleteRedisPrefix(env.REDIS_URL, prefix);
    },
  };
}

async function filesText(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) parts.push((await readFile(join(entry.parentPath, entry.name))).toString('latin1'));
  }
  return parts.join('\n');
}

function suite(name: string, start: () => Promise<Deployment>, describeIt: (name: string, fn: () => void) => void) {
  describeIt(name, () => {
    let d: Deployment;
    let a: Harness;
    let b: Harness;
    beforeAll(async () => {
      offset = 0;
      d = await start();
      a = d.replicas[0]!;
      b = d.replicas[d.replicas.length - 1]!;
    });
    afterAll(async () => {
      await d?.close();
    });

    const marker = () => `marker-${randomBytes(12).toString('hex')}`;
    const send = (h: Harness, token: string, args: Record<string, unknown>) => h.authorize('crm-mcp', { token, tool: 'send_email', arguments: args, call_id: callId('send') });
    const pending = async (h: Harness, tenant: string) => (await h.get(`/v1/approvals?tenant=${tenant}`, a.operatorToken)).body.approvals as any[];

    /** The marker is nowhere but in operator answers to GET /v1/approvals (and the allow, once approved). Requests are not recorded, answers are. */
    async function expectOnlyOperatorsSaw(secret: string): Promise<void> {
      for (const r of d.replicas) {
        await r.flushLogs();
        expect((await readFile(r.logFile)).includes(secret)).toBe(false);
        expect((await filesText(r.dataDir)).includes(secret)).toBe(false);
        // Allowed, the call's own server gets its effective arguments back (DESIGN.md's allow answer): that one is by design.
        const elsewhere = r.exchanges.filter((x) => !(x.method === 'GET' && x.path.startsWith('/v1/approvals')) && !(x.path === '/v1/authorize' && x.status === 200));
        expect(elsewhere.filter((x) => x.text.includes(secret)).map((x) => `${x.method} ${x.path} ${x.status}`)).toEqual([]);
      }
      expect((await d.sharedDump()).includes(secret)).toBe(false);
    }

    it('shows an operator on any replica the effective arguments that the hash binds, and the agent only an approval id', async () => {
      const secret = marker();
      const token = await a.token('acme-agent', 'crm-mcp');
      const args = { to: 'cfo@acme.example', subject: 'wire', body: `send 1M to ${secret}` };
      const asked = await send(a, token, args);
      expectDeny(a, asked, 403, 'approval_required');
      expect(Object.keys(asked.body).sort()).toEqual(['approval_id', 'call_id', 'decision', 'message', 'reason', 'request_id']);

      for (const r of d.replicas) {
        const shown = (await pending(r, 'acme')).find((x) => x.id === asked.body.approval_id);
        expect(shown).toMatchObject({ tenant: 'acme', principal: 'acme-agent', tool: 'send_email', arguments: args });
        expect(await r.broker.argumentMacs.mac('acme', shown.arguments)).toBe(shown.arguments_mac);
      }
      expect(JSON.stringify(await pending(b, 'globex'))).not.toContain(secret);
      await expectOnlyOperatorsSaw(secret);

      // Approved: the sealed copy is gone (no longer listed, nothing stored), and the call runs once.
      expect((await b.post(`/v1/approvals/${asked.body.approval_id}/approve`, {}, a.operatorToken)).status).toBe(200);
      expect((await pending(a, 'acme')).map((x) => x.id)).not.toContain(asked.body.approval_id);
      if (d.redis) expect(await d.redis.exists(`${d.prefix}:approval-args:${asked.body.approval_id}`)).toBe(0);
      const ran = await send(b, token, args);
      expect(ran.body.decision).toBe('allow');
      await expectOnlyOperatorsSaw(secret);
    });

    it('deletes the sealed arguments when the approval is denied', async () => {
      const secret = marker();
      const token = await a.token('globex-agent', 'crm-mcp');
      const asked = await send(a, token, { to: 'x@globex.example', subject: secret, body: '' });
      const id = asked.body.approval_id as string;
      if (d.redis) expect(await d.redis.exists(`${d.prefix}:approval-args:${id}`)).toBe(1);
      expect((await b.post(`/v1/approvals/${id}/deny`, {}, a.operatorToken)).status).toBe(200);
      if (d.redis) expect(await d.redis.exists(`${d.prefix}:approval-args:${id}`)).toBe(0);
      await expectOnlyOperatorsSaw(secret);
    });

    it('keeps them only for the approval\'s lifetime: expired, it is not listed and the sealed copy expires with it', async () => {
      const secret = marker();
      const token = await a.token('initech-agent', 'crm-mcp');
      const asked = await send(a, token, { to: 'x@initech.example', subject: 'later', body: secret });
      const id = asked.body.approval_id as string;
      const listed = (await pending(a, 'initech')).find((x) => x.id === id);
      expect(listed.arguments.body).toBe(secret);
      if (d.redis) {
        // Redis itself drops the sealed copy at the approval's expiry, whatever the broker does.
        expect(await d.redis.call('PEXPIRETIME', `${d.prefix}:approval-args:${id}`)).toBe(Date.parse(listed.expires_at));
      }
      offset += APPROVAL_TTL_MS;
      expect((await pending(b, 'initech')).map((x) => x.id)).not.toContain(id);
      offset = 0;
      await expectOnlyOperatorsSaw(secret);
    });

    if (name.includes('scaled out')) {
      it("a sealed copy moved into another tenant's approval does not open: the operator is told, and sees nothing", async () => {
        const secret = marker();
        const acme = await send(a, await a.token('acme-agent', 'crm-mcp'), { to: 'a@acme.example', subject: 'moved', body: secret });
        const globex = await send(a, await a.token('globex-agent', 'crm-mcp'), { to: 'g@globex.example', subject: 'victim', body: '' });
        const stolen = await d.redis!.get(`${d.prefix}:approval-args:${acme.body.approval_id}`);
        await d.redis!.set(`${d.prefix}:approval-args:${globex.body.approval_id}`, stolen!);
        const shown = (await pending(b, 'globex')).find((x) => x.id === globex.body.approval_id);
        expect(shown).toMatchObject({ arguments: null, arguments_unavailable: "the tenant's key could not open them" });
        expect(JSON.stringify(await pending(b, 'globex'))).not.toContain(secret);
      });
    }
  });
}

suite('approval arguments: embedded default', embedded, describe);
suite('approval arguments: scaled out, two replicas', scaledOut, (name, fn) => describeWithUpstream(['postgres', 'redis'], name, fn));
