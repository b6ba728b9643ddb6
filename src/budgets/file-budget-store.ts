import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { openJsonlJournal, type JsonlJournal } from '../journal/jsonl-journal';
import { replaceFile } from '../storage/atomic-file';
import { dayOf, exceeded, hourOf, isTenantBudgetKey, secondsUntilReset, type BudgetStore, type BudgetUse } from './budget-store';

interface Entry {
  k: string;
  c: number;
  at: number;
}

/**
 * The embedded budget store: today's totals in memory, and every charge and correction appended to
 * `<dataDir>/budgets/<day>.jsonl` (fsynced, group-committed) before the call is allowed, so a restart
 * reads today's file back and a tenant cannot spend its budget twice by crashing the broker. Only
 * today's file is needed (an hour lies inside its UTC day); older files are deleted as days roll over.
 * A charge is checked and counted synchronously, so concurrent calls cannot both take the last unit;
 * a charge whose journal write fails is taken back and the call fails closed.
 */
export async function createFileBudgetStore(options: { dataDir: string; now: () => number }): Promise<BudgetStore> {
  const dir = join(options.dataDir, 'budgets');
  let day = dayOf(options.now());
  let journal: JsonlJournal;
  const hourly = new Map<string, { hour: number; used: number }>();
  const daily = new Map<string, number>();

  function apply(entry: Entry): void {
    if (dayOf(entry.at) !== day) return;
    daily.set(entry.k, (daily.get(entry.k) ?? 0) + entry.c);
    const h = hourly.get(entry.k);
    const hour = hourOf(entry.at);
    if (!h || h.hour < hour) hourly.set(entry.k, { hour, used: entry.c });
    else if (h.hour === hour) h.used += entry.c;
  }

  async function openDay(): Promise<void> {
    const opened = await openJsonlJournal(join(dir, `${day}.jsonl`));
    for (const entry of opened.entries as Entry[]) apply(entry);
    journal = opened.journal;
    for (const name of await readdir(dir)) if (name.endsWith('.jsonl') && name !== `${day}.jsonl`) await unlink(join(dir, name)).catch(() => undefined);
  }
  await openDay();

  async function rollOver(now: number): Promise<void> {
    if (dayOf(now) === day) return;
    await journal.close();
    day = dayOf(now);
    hourly.clear();
    daily.clear();
    await openDay();
  }

  const useOf = (key: string, now: number): BudgetUse => {
    const h = hourly.get(key);
    return { hourly: h && h.hour === hourOf(now) ? h.used : 0, daily: dayOf(now) === day ? (daily.get(key) ?? 0) : 0 };
  };

  async function record(entries: Entry[]): Promise<void> {
    entries.forEach(apply);
    try {
      await Promise.all(entries.map((e) => journal.append(e)));
    } catch (err) {
      entries.forEach((e) => apply({ ...e, c: -e.c }));
      throw err;
    }
  }

  return {
    async charge(charges, cost, now) {
      await rollOver(now);
      for (const { key, limits } of charges) {
        const window = exceeded(useOf(key, now), cost, limits);
        if (window) return { allowed: false, key, window, retryAfterSeconds: secondsUntilReset(window, now) };
      }
      if (cost !== 0) await record(charges.map(({ key }) => ({ k: key, c: cost, at: now })));
      return { allowed: true };
    },
    async adjust(keys, delta, at, now) {
      await rollOver(now);
      if (delta === 0 || dayOf(at) !== day) return;
      await record(keys.map((k) => ({ k, c: delta, at })));
    },
    async usage(key, now) {
      return useOf(key, now);
    },
    async forgetTenant(tenant) {
      // The journal is append-only, so the day's file is rewritten without the tenant's lines (atomically:
      // a crash leaves the old file, and a rerun rewrites it). Charges meanwhile fail closed on the
      // closed journal; the tenant being deleted is revoked first, so they are other tenants' retries.
      await rollOver(options.now());
      await journal.close();
      const path = join(dir, `${day}.jsonl`);
      const opened = await openJsonlJournal(path);
      await opened.journal.close();
      const kept = (opened.entries as Entry[]).filter((e) => !isTenantBudgetKey(e.k, tenant));
      if (kept.length !== opened.entries.length) await replaceFile(path, kept.map((e) => JSON.stringify(e) + '\n').join(''));
      hourly.clear();
      daily.clear();
      await openDay();
    },
    close: () => journal.close(),
  };
}
