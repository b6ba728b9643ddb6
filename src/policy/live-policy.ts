import { diffPolicies, type PolicyDiff } from './diff';
import { PolicyError } from './load';
import type { Policy } from './schema';
import { policyVersion } from './version';

export interface ReloadResult {
  /** The version now serving (unchanged when `changed` is false). */
  version: string;
  previous_version: string;
  changed: boolean;
  diff: PolicyDiff;
}

export interface LivePolicy {
  /** The policy now serving. A call reads it once and finishes under it, whatever reloads meanwhile. */
  current(): Policy;
  version(): string;
  /**
   * Loads the policy again, validates it whole and swaps it in at once. A policy that does not load,
   * or that changes a setting which takes effect only at a restart (anything under `broker`), is
   * refused with a PolicyError and the old policy keeps serving: a reload is never half-applied.
   * Reloads run one at a time.
   */
  reload(): Promise<ReloadResult>;
  /** Called with each newly swapped-in policy, after the swap (e.g. to log or count it). */
  onChange(listener: (policy: Policy, result: ReloadResult) => void): void;
}

export interface LivePolicyOptions {
  initial: Policy;
  /** Reads and validates the policy from where it came from; throws PolicyError when it is bad. */
  load: () => Policy | Promise<Policy>;
  /**
   * Prepares the broker's other parts for the new policy before it serves (e.g. Vault identities for
   * a new tenant); throwing refuses the reload and leaves everything as it was.
   */
  prepare?: (next: Policy, current: Policy) => void | Promise<void>;
}

export function createLivePolicy(options: LivePolicyOptions): LivePolicy {
  let policy = options.initial;
  let queue: Promise<unknown> = Promise.resolve();
  const listeners: Array<(policy: Policy, result: ReloadResult) => void> = [];

  async function reloadNow(): Promise<ReloadResult> {
    const next = await options.load();
    const diff = diffPolicies(policy, next);
    const result = { version: policyVersion(next), previous_version: policyVersion(policy), changed: !diff.same, diff };
    if (diff.broker.length) {
      throw new PolicyError(
        `policy not reloaded: ${diff.broker.join(', ')} ${diff.broker.length === 1 ? 'takes' : 'take'} effect only at a restart`,
        diff.broker.map((path) => `${path}: takes effect only at a restart`),
      );
    }
    if (!result.changed) return result;
    await options.prepare?.(next, policy);
    policy = next;
    for (const listener of listeners) listener(next, result);
    return result;
  }

  return {
    current: () => policy,
    version: () => policyVersion(policy),
    reload() {
      const run = queue.then(reloadNow, reloadNow);
      queue = run.catch(() => undefined);
      return run;
    },
    onChange(listener) {
      listeners.push(listener);
    },
  };
}
