import { systemClock, type Clock } from '../clock';
import { abortableSleep } from './abortable-sleep';
import type { Allow, BrokerClient } from './broker-client';
import type { GuardLogger } from './call-pipeline';

/**
 * /v1/complete for calls whose result does not depend on its answer, sent after the result is
 * returned instead of before (one broker round trip off every tool call's latency).
 *
 * Only a call that reported no record count goes here: its answer can neither quarantine the session
 * nor withhold the result, so the client gets exactly what it would have got by waiting. A call with a
 * record count still waits, because `max_records` decides whether its result leaves.
 *
 * What the client cannot see still holds: the broker records the completion (retried while it answers
 * audit_unavailable, state_unavailable or cannot be reached, until the call's grant expires — after that
 * the broker closes the call itself), the tenant's concurrency slot is released by it, and `close()`
 * drains what is in flight before the broker connection goes.
 */

export interface BackgroundCompletions {
  send(decision: Allow, status: 'success' | 'error'): void;
  /** What is in flight for `tenant` now, settling when all of it has; undefined when nothing is. */
  inFlight(tenant: string): Promise<unknown> | undefined;
  /** Waits up to `timeoutMs` for everything in flight, then stops retrying what is left. */
  drain(timeoutMs: number): Promise<void>;
}

/** How long closing the wrapper waits for completions still on their way. */
export const COMPLETION_DRAIN_MS = 10_000;

/** Answers that say the completion was not recorded yet and may be on a later try. */
const RETRYABLE = new Set(['audit_unavailable', 'state_unavailable', 'broker_unavailable']);
const FIRST_RETRY_MS = 50;
const MAX_RETRY_MS = 1000;

export function createBackgroundCompletions(broker: BrokerClient, options: { logger?: GuardLogger; clock?: Clock } = {}): BackgroundCompletions {
  const clock = options.clock ?? systemClock;
  const log = options.logger;
  const inFlight = new Map<string, Set<Promise<void>>>();
  const stop = new AbortController();

  async function complete(decision: Allow, status: 'success' | 'error'): Promise<void> {
    const where = { tool: decision.tool, call_id: decision.call_id, tenant: decision.tenant };
    const expires = Date.parse(decision.expires_at);
    let delay = FIRST_RETRY_MS;
    for (;;) {
      const closed = await broker.complete({ call_id: decision.call_id, status });
      if (!('decision' in closed)) return;
      const left = expires - clock.now();
      if (!RETRYABLE.has(closed.reason) || stop.signal.aborted || left <= 0) {
        log?.warn({ ...where, reason: closed.reason }, 'tool call could not be completed at the broker');
        return;
      }
      await abortableSleep(Math.min(delay, left), stop.signal);
      delay = Math.min(MAX_RETRY_MS, delay * 2);
    }
  }

  return {
    send(decision, status) {
      const tenantCalls = inFlight.get(decision.tenant) ?? new Set<Promise<void>>();
      inFlight.set(decision.tenant, tenantCalls);
      const done: Promise<void> = complete(decision, status).finally(() => {
        tenantCalls.delete(done);
        if (tenantCalls.size === 0) inFlight.delete(decision.tenant);
      });
      tenantCalls.add(done);
    },

    inFlight(tenant) {
      const tenantCalls = inFlight.get(tenant);
      return tenantCalls === undefined ? undefined : Promise.all(tenantCalls);
    },

    async drain(timeoutMs) {
      const all = [...inFlight.values()].flatMap((calls) => [...calls]);
      if (all.length === 0) return;
      const timeout = new AbortController();
      await Promise.race([Promise.all(all), abortableSleep(timeoutMs, timeout.signal)]);
      timeout.abort();
      stop.abort();
    },
  };
}
