import { principalBudgetKey, tenantBudgetKey, type BudgetCharge, type BudgetStore } from '../budgets/budget-store';
import { BrokerError, isBrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { QuotaStore } from '../quotas/quota-store';

/** What a call was charged, so a refused call can be refunded and reported usage can correct it. */
export interface Spend {
  cost: number;
  keys: string[];
  /** Epoch ms the charge was made at: its windows. */
  at: number;
}

/**
 * The two spending limits a call must pass before its credential is resolved: the tenant's and the
 * principal's budgets (cost units per UTC hour and day), then the calls-per-minute of the credential
 * it would use (one upstream key shared by several tools is protected from one noisy tenant).
 */
export function createSpending(deps: { budgets: BudgetStore; quotas: Pick<QuotaStore, 'takeCall'>; now: () => number }) {
  async function charge(policy: Policy, tenant: string, principal: string, tool: string): Promise<Spend | null> {
    const tenantPolicy = policy.tenants[tenant]!;
    const toolPolicy = tenantPolicy.tools[tool]!;
    const charges: BudgetCharge[] = [];
    if (tenantPolicy.budgets) charges.push({ key: tenantBudgetKey(tenant), limits: tenantPolicy.budgets });
    const principalBudgets = Object.hasOwn(tenantPolicy.principals, principal) ? tenantPolicy.principals[principal]!.budgets : undefined;
    if (principalBudgets) charges.push({ key: principalBudgetKey(tenant, principal), limits: principalBudgets });
    if (charges.length === 0) return null;
    const at = deps.now();
    const result = await deps.budgets.charge(charges, toolPolicy.cost, at).catch((err) => {
      throw new BrokerError('state_unavailable', 'budget state is unavailable', { cause: err });
    });
    if (!result.allowed) {
      const whose = result.key.startsWith('p:') ? "this principal's" : "the tenant's";
      throw new BrokerError('budget_exceeded', `${whose} ${result.window} budget does not admit a call costing ${toolPolicy.cost}`, { retryAfter: result.retryAfterSeconds });
    }
    return { cost: toolPolicy.cost, keys: charges.map((c) => c.key), at };
  }

  async function takeCredentialRate(policy: Policy, tenant: string, credential: string): Promise<void> {
    const perMinute = policy.tenants[tenant]!.credentials[credential]!.calls_per_minute;
    if (perMinute === undefined) return;
    // Tenant ids cannot contain ":", so this counter can never be another tenant's.
    const rate = await deps.quotas.takeCall(`${tenant}:credential:${credential}`, perMinute).catch((err) => {
      throw new BrokerError('state_unavailable', 'quota state is unavailable', { cause: err });
    });
    if (!rate.allowed) throw new BrokerError('quota_exceeded', `credential "${credential}" allows ${perMinute} calls per minute for this tenant`, { retryAfter: rate.retryAfterSeconds });
  }

  /** Gives a refused call's charge back (it never ran). Never throws: the refusal already stands. */
  async function refund(spend: Spend | null): Promise<void> {
    if (spend && spend.cost !== 0) await deps.budgets.adjust(spend.keys, -spend.cost, spend.at, deps.now()).catch(() => undefined);
  }

  /** Replaces the estimate with the usage the MCP server reported. */
  async function correct(spend: Spend, actual: number): Promise<void> {
    try {
      await deps.budgets.adjust(spend.keys, actual - spend.cost, spend.at, deps.now());
    } catch (err) {
      if (isBrokerError(err)) throw err;
      throw new BrokerError('state_unavailable', 'budget state is unavailable; the reported usage was not recorded', { cause: err });
    }
  }

  return { charge, takeCredentialRate, refund, correct };
}
export type Spending = ReturnType<typeof createSpending>;
