import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { principalBudgetKey, tenantBudgetKey, type BudgetStore } from '../../src/budgets/budget-store';
import { createFileBudgetStore } from '../../src/budgets/file-budget-store';
import type { ApprovalStore } from '../../src/approvals/approval-store';
import { createMemoryApprovalStore } from '../../src/approvals/memory-approval-store';
import { manualClock } from '../../src/clock';
import { createRedisApprovalStore } from '../../src/state/redis/approval-store';
import { createMemoryQuotaStore } from '../../src/quotas/memory-quota-store';
import type { QuotaStore } from '../../src/quotas/quota-store';
import { createKeyspace } from '../../src/state/redis/keyspace';
import { createRedisQuotaStore } from '../../src/state/redis/quota-store';
import { createRedisBudgetStore } from '../../src/state/redis/budget-store';
import { describeWithUpstream, requireUpstream } from '../support/upstreams';
import { filesUnder } from '../support/tenant-data';

/**
 * Tenant delete's approval, quota and budget steps. Approvals: every approval of the tenant, pending,
 * approved or denied, goes with its indexes; "acme-eu"'s stay usable. Quotas: `forgetTenant` drops the tenant's calls-per-minute
 * window and concurrency slots (memory, Redis) and no other tenant's. Budgets: `forgetTenant` leaves no counter of the tenant or of its principals, in
 * the embedded store's files (a walk of the data dir) or in Redis (a SCAN of the prefix), while tenants
 * whose ids share its prefix ("acme-eu"), and another tenant's principal named like it, keep theirs.
 * Run twice it succeeds and changes nothing (idempotent).
 */

// The real time, not a fixed date: Redis expires keys by its own clock, so a fixed date soon lies in the
// past and every key written "until NOW + 10 minutes" is gone on arrival.
const NOW = Date.now();
const LIMITS = { hourly: 1000, daily: 1000 };

/** Spends in both windows for "acme" (tenant and a principal) and for the lookalikes that must stay. */
async function spend(store: BudgetStore): Promise<void> {
  const charge = (...keys: string[]) => store.charge(keys.map((key) => ({ key, limits: LIMITS })), 5, NOW);
  await charge(tenantBudgetKey('acme'), principalBudgetKey('acme', 'alice'));
  await charge(tenantBudgetKey('acme-eu'), principalBudgetKey('acme-eu', 'alice'));
  await charge(tenantBudgetKey('beta'), principalBudgetKey('beta', 'acme'));
  await store.adjust([tenantBudgetKey('acme'), principalBudgetKey('acme', 'alice')], -1, NOW, NOW);
}

async function expectOthersKept(store: BudgetStore): Promise<void> {
  for (const key of [tenantBudgetKey('acme-eu'), principalBudgetKey('acme-eu', 'alice'), tenantBudgetKey('beta'), principalBudgetKey('beta', 'acme')]) {
    expect(await store.usage(key, NOW)).toEqual({ hourly: 5, daily: 5 });
  }
}

async function expectForgotten(store: BudgetStore): Promise<void> {
  for (const key of [tenantBudgetKey('acme'), principalBudgetKey('acme', 'alice')]) {
    expect(await store.usage(key, NOW)).toEqual({ hourly: 0, daily: 0 });
  }
}

describe('budget store forgetTenant (embedded, files)', () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'bulkhead-forget-budgets-'));
  });
  afterEach(() => rm(dataDir, { recursive: true, force: true }));

  it('removes the tenant from memory and from every file, keeps the others, and survives a restart', async () => {
    const store = await createFileBudgetStore({ dataDir, now: () => NOW });
    await spend(store);
    const before = (await Promise.all((await filesUnder(dataDir)).map((f) => readFile(f, 'utf8')))).join('');
    expect(before).toContain('"t:acme"'); // the check below can see the tenant's lines

    await store.forgetTenant('acme');
    await store.forgetTenant('acme'); // idempotent
    await expectForgotten(store);
    await expectOthersKept(store);
    for (const file of await filesUnder(dataDir)) {
      const text = await readFile(file, 'utf8');
      expect(text).not.toContain('"t:acme"');
      expect(text).not.toContain('"p:acme/');
    }

    // The journal still works after the rewrite, and a restart reads back exactly what was kept.
    await store.charge([{ key: tenantBudgetKey('beta'), limits: LIMITS }], 1, NOW);
    await store.close?.();
    const reopened = await createFileBudgetStore({ dataDir, now: () => NOW });
    await expectForgotten(reopened);
    expect(await reopened.usage(tenantBudgetKey('beta'), NOW)).toEqual({ hourly: 6, daily: 6 });
    expect(await reopened.usage(tenantBudgetKey('acme-eu'), NOW)).toEqual({ hourly: 5, daily: 5 });
    await reopened.close?.();
  });

  it('succeeds for a tenant that never spent', async () => {
    const store = await createFileBudgetStore({ dataDir, now: () => NOW });
    await spend(store);
    await store.forgetTenant('nobody');
    await expectOthersKept(store);
    expect(await store.usage(tenantBudgetKey('acme'), NOW)).toEqual({ hourly: 4, daily: 4 });
    await store.close?.();
  });
});

/** Two calls and a held slot for "acme", and the same for the lookalike "acme-eu" that must stay. */
async function useQuotas(store: QuotaStore): Promise<void> {
  for (const tenant of ['acme', 'acme-eu']) {
    for (let i = 0; i < 2; i++) expect((await store.takeCall(tenant, 10)).allowed).toBe(true);
    expect(await store.acquireSlot(tenant, `${tenant}-call`, 5, 60_000)).toBe(true);
  }
}

async function expectQuotasForgotten(store: QuotaStore): Promise<void> {
  await store.forgetTenant('acme');
  await store.forgetTenant('acme'); // idempotent
  expect(await store.usage('acme')).toEqual({ calls_last_minute: 0, in_flight: 0 });
  expect(await store.usage('acme-eu')).toEqual({ calls_last_minute: 2, in_flight: 1 });
}

/** For each of "acme" and "acme-eu": one approved (not yet used), one denied, one pending. Returns the ids. */
async function useApprovals(store: ApprovalStore): Promise<Record<string, string[]>> {
  const ids: Record<string, string[]> = {};
  for (const tenant of ['acme', 'acme-eu']) {
    const ask = (tool: string) => store.request({ tenant, principal: 'alice', session: 's1', tool, arguments_mac: 'a'.repeat(64), expires_at: NOW + 600_000 }, NOW);
    const [approved, denied, pending] = [await ask('pay'), await ask('refund'), await ask('wire')];
    await store.decide(approved.id, 'approved', 'op', NOW);
    await store.decide(denied.id, 'denied', 'op', NOW);
    ids[tenant] = [approved.id, denied.id, pending.id];
  }
  return ids;
}

async function expectApprovalsForgotten(store: ApprovalStore, ids: Record<string, string[]>): Promise<void> {
  await store.forgetTenant('acme');
  await store.forgetTenant('acme'); // idempotent
  for (const id of ids.acme!) expect(await store.get(id)).toBeNull();
  expect(await store.listPending('acme', NOW)).toEqual([]);
  expect(await store.consume('acme', 's1', 'pay', 'a'.repeat(64), NOW)).toBeNull();
  expect((await store.listPending('acme-eu', NOW)).map((a) => a.id)).toEqual([ids['acme-eu']![2]]);
  expect((await store.consume('acme-eu', 's1', 'pay', 'a'.repeat(64), NOW))?.id).toBe(ids['acme-eu']![0]);
}

describe('approval store forgetTenant (memory)', () => {
  it('deletes every approval of the tenant and no other', async () => {
    const store = createMemoryApprovalStore();
    await expectApprovalsForgotten(store, await useApprovals(store));
  });
});

describe('quota store forgetTenant (memory)', () => {
  it('drops the tenant\'s window and slots only', async () => {
    const store = createMemoryQuotaStore({ clock: manualClock(NOW) });
    await useQuotas(store);
    await expectQuotasForgotten(store);
  });
});

describeWithUpstream(['redis'], 'quota and budget stores forgetTenant (Redis, shared by replicas)', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(requireUpstream('redis').REDIS_URL);
  });
  afterAll(() => redis?.quit());

  async function keysUnder(prefix: string): Promise<string[]> {
    const out: string[] = [];
    for (let cursor = '0'; ; ) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      out.push(...keys);
      if ((cursor = next) === '0') return out.sort();
    }
  }

  it('approvals: deletes every approval hash, open key and index of the tenant, and nothing else', async () => {
    const keyspace = createKeyspace(`test-forget-${randomBytes(4).toString('hex')}`);
    const store = createRedisApprovalStore({ redis, keyspace });
    const ids = await useApprovals(store);
    const before = await keysUnder(keyspace.prefix);
    const acmeKeys = [...ids.acme!.map((id) => keyspace.approval(id)), keyspace.approvalsPending('acme')];
    for (const key of acmeKeys) expect(before).toContain(key);
    const openKeys = before.filter((k) => k.includes(':approval-open:'));
    expect(openKeys).toHaveLength(4); // approved and pending, per tenant

    await expectApprovalsForgotten(store, ids);
    const after = await keysUnder(keyspace.prefix);
    for (const key of after) expect(await redis.hget(key, 'tenant').catch(() => null)).not.toBe('acme');
    // Left: acme-eu's three hashes, its pending index and its pending call's open key (the approved one was used).
    expect(after).toEqual([...ids['acme-eu']!.map((id) => keyspace.approval(id)), keyspace.approvalsPending('acme-eu'), ...after.filter((k) => k.includes(':approval-open:'))].sort());
    expect(after.filter((k) => k.includes(':approval-open:'))).toHaveLength(1);
  });

  it('quotas: deletes the tenant\'s rate and slot keys, and nothing else', async () => {
    const keyspace = createKeyspace(`test-forget-${randomBytes(4).toString('hex')}`);
    const store = createRedisQuotaStore({ redis, keyspace });
    await useQuotas(store);
    expect(await keysUnder(keyspace.prefix)).toEqual([keyspace.rate('acme'), keyspace.rate('acme-eu'), keyspace.slots('acme'), keyspace.slots('acme-eu')].sort());
    await expectQuotasForgotten(store);
    expect(await keysUnder(keyspace.prefix)).toEqual([keyspace.rate('acme-eu'), keyspace.slots('acme-eu')].sort());
  });

  it('budgets: deletes every counter of the tenant and its principals, and nothing else', async () => {
    const keyspace = createKeyspace(`test-forget-${randomBytes(4).toString('hex')}`);
    const store = createRedisBudgetStore({ redis, keyspace });
    await spend(store);
    const before = await keysUnder(keyspace.prefix);
    expect(before.filter((k) => k.includes(':budget:t:acme:') || k.includes(':budget:p:acme/'))).toHaveLength(4);

    await store.forgetTenant('acme');
    await store.forgetTenant('acme'); // idempotent
    await expectForgotten(store);
    await expectOthersKept(store);
    const after = await keysUnder(keyspace.prefix);
    expect(after).toEqual(before.filter((k) => !k.includes(':budget:t:acme:') && !k.includes(':budget:p:acme/')));
    expect(after).toHaveLength(8);
  });
});
