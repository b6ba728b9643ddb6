import { BrokerError } from '../errors';
import type { Policy } from '../policy/schema';
import type { RevocationTarget } from '../revocation/revocation-store';

/** What an operator names: exactly one of tenant / session / principal / jti. */
export interface TargetInput {
  tenant?: string;
  session?: string;
  principal?: string;
  jti?: string;
}

/**
 * Exactly one of tenant / session / principal / jti. Principals are tenant-scoped: "acme/acme-agent"
 * always works; a bare "acme-agent" works when exactly one tenant's policy has that principal.
 * Ids are taken exactly as given (no trimming, no case folding): "acme/Acme-agent " is not
 * "acme/acme-agent", and the kill switch refuses it as unknown rather than guess.
 */
export function resolveTarget(policy: Policy, input: TargetInput): RevocationTarget {
  const given = (['tenant', 'session', 'principal', 'jti'] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1) throw new BrokerError('bad_request', 'give exactly one of tenant, session, principal, jti');
  if (input.tenant !== undefined) {
    // Own keys only: "constructor" is a valid id and must not find Object.prototype's.
    if (!Object.hasOwn(policy.tenants, input.tenant)) throw new BrokerError('not_found', `unknown tenant "${input.tenant}"${didYouMean(input.tenant, Object.keys(policy.tenants))}`);
    return { kind: 'tenant', tenant: input.tenant };
  }
  if (input.session !== undefined) return { kind: 'session', session: input.session };
  if (input.jti !== undefined) return { kind: 'jti', jti: input.jti };
  const principal = input.principal!;
  const slash = principal.indexOf('/');
  if (slash > 0) {
    const tenant = principal.slice(0, slash);
    if (!Object.hasOwn(policy.tenants, tenant)) throw new BrokerError('not_found', `unknown tenant "${tenant}"${didYouMean(tenant, Object.keys(policy.tenants))}`);
    return { kind: 'principal', tenant, principal: principal.slice(slash + 1) };
  }
  const owners = Object.entries(policy.tenants).filter(([, t]) => Object.hasOwn(t.principals, principal));
  if (owners.length !== 1) {
    throw new BrokerError(owners.length === 0 ? 'not_found' : 'bad_request', `principal "${principal}" is ${owners.length === 0 ? 'not in policy' : 'in several tenants'}; name it as "tenant/principal"`);
  }
  return { kind: 'principal', tenant: owners[0]![0], principal };
}

/**
 * " (did you mean "x"?)" when exactly one known id differs from `given` only by case, surrounding
 * space or one or two typed characters; else "". A hint for the operator, never a substitute.
 */
export function didYouMean(given: string, known: readonly string[]): string {
  const fold = (s: string) => s.trim().toLowerCase();
  const near = known.filter((k) => k !== given && (fold(k) === fold(given) || editDistanceAtMost(fold(k), fold(given), 2)));
  return near.length === 1 ? ` (did you mean "${near[0]}"?)` : '';
}

function editDistanceAtMost(a: string, b: string, max: number): boolean {
  if (Math.abs(a.length - b.length) > max || a.length > 256 || b.length > 256) return false;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]! <= max;
}
