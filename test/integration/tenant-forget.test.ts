import Redis from 'ioredis';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { principalBudgetKey, tenantBudgetKey, type BudgetStore } from '../../src/budgets/budget-store';
import { createFileBudgetStore } from '../../src/budgets/file-budget-store';
import { manualClock } from '../../src/clock';
import { createMemoryQuotaStore } from '../../src/quotas/memory-quota-store';
import type { QuotaStore } from '../../src/quotas/quota-store';
import { createKeyspace } from '../../src/state/redis/keyspace';
import { createRedisQuotaStore } from '../../src/state/redis/quota-store';
import { createRedisBudgetStore } from '../../src/state/redis/budget-store';
import { describeWithUpstream, requireUpstream } from '../support/upstreams';

/**
 * Tenant delete's quota and budget steps. Quotas: `forgetTenant` drops the tenant's calls-per-minute
 * window and concurrency slots (memory, Redis) and no other tenant's. Budgets: `forgetTenant` leaves no counter of the tenant or of its principals, in
 * the embedded store's files (a walk of the data dir) or in Redis (a SCAN of the prefix), while tenants
 * whose ids share its prefix ("acme-eu"), and another tenant's principal named like it, keep theirs.
 * Run twice it succeeds and changes nothing (idempotent).
 */

const NOW = Date.UTC(2026, 11, 2, 10, 30);
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

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out;
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
