import { BrokerError } from '../errors';
import type { Policy } from '../policy/schema';

/** The operator a route acts for, as authenticate() set it. */
export const operatorOf = (res: { locals: Record<string, unknown> }) => res.locals.operator as string;

/** A tenant id from an operator request, if the live policy has it; else 404. */
export function knownTenantOf(policy: () => Policy): (tenant: string) => string {
  return (tenant) => {
    // Own keys only: "constructor" is a valid id and must not find Object.prototype's.
    if (!Object.hasOwn(policy().tenants, tenant)) throw new BrokerError('not_found', `unknown tenant "${tenant}"`);
    return tenant;
  };
}
