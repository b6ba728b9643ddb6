import type { Policy } from './schema';

/**
 * `derive`, computed once per policy object and dropped with it: a loaded policy is deep-frozen, so a
 * value derived from it (its version, an index over its tenants) can never go stale, and a reload is
 * a new object that gets its own.
 */
export function perPolicy<T>(derive: (policy: Policy) => T): (policy: Policy) => T {
  const derived = new WeakMap<Policy, T>();
  return (policy) => {
    let value = derived.get(policy);
    if (value === undefined) {
      value = derive(policy);
      derived.set(policy, value);
    }
    return value;
  };
}
