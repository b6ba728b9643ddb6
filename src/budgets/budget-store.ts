/**
 * Per-tenant (and per-principal) spending caps in cost units, over fixed UTC-hour and UTC-day windows.
 * A call's cost is charged before any credential is resolved, to every budget it falls under at once or
 * to none; the MCP server's reported usage corrects the charge afterwards. Embedded: in memory with a
 * group-committed journal (durable across restarts). Scale-out: Redis, atomic across replicas.
 */
export type BudgetWindow = 'hourly' | 'daily';

export interface BudgetLimits {
  hourly?: number;
  daily?: number;
}

export interface BudgetCharge {
  /** `t:<tenant>` or `p:<tenant>/<principal>`. */
  key: string;
  limits: BudgetLimits;
}

export type ChargeResult = { allowed: true } | { allowed: false; key: string; window: BudgetWindow; retryAfterSeconds: number };

export interface BudgetUse {
  hourly: number;
  daily: number;
}

export interface BudgetStore {
  /** Adds `cost` to every key's current windows if each stays within its limits; otherwise changes nothing. */
  charge(charges: BudgetCharge[], cost: number, now: number): Promise<ChargeResult>;
  /** Adds `delta` (negative: a refund) to the windows of each key that contain `at`, if still current. */
  adjust(keys: string[], delta: number, at: number, now: number): Promise<void>;
  usage(key: string, now: number): Promise<BudgetUse>;
  /**
   * Deletes every counter of the tenant and of its principals (tenant delete), in memory and at rest,
   * so no file or key names the tenant any more. Idempotent: a second call finds nothing and succeeds.
   */
  forgetTenant(tenant: string): Promise<void>;
  close?(): Promise<void>;
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;
export const hourOf = (ms: number) => Math.floor(ms / HOUR_MS);
export const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

/** Seconds until the window that refused the call starts again (for Retry-After). */
export function secondsUntilReset(window: BudgetWindow, now: number): number {
  const size = window === 'hourly' ? HOUR_MS : DAY_MS;
  return Math.max(1, Math.ceil(((Math.floor(now / size) + 1) * size - now) / 1000));
}

export const tenantBudgetKey = (tenant: string) => `t:${tenant}`;
export const principalBudgetKey = (tenant: string, principal: string) => `p:${tenant}/${principal}`;
/** Whether a budget key (above) counts for this tenant: its own, or one of its principals'. */
export const isTenantBudgetKey = (key: string, tenant: string) => key === tenantBudgetKey(tenant) || key.startsWith(`p:${tenant}/`);

/** The first limit the new totals would pass, if any: daily before hourly, so Retry-After is the longer wait. */
export function exceeded(use: BudgetUse, cost: number, limits: BudgetLimits): BudgetWindow | null {
  if (limits.daily !== undefined && use.daily + cost > limits.daily) return 'daily';
  if (limits.hourly !== undefined && use.hourly + cost > limits.hourly) return 'hourly';
  return null;
}
