import type { Clock } from '../clock';
import type { QuotaStore, QuotaUsage, RateDecision } from './quota-store';

/**
 * The embedded quota store, for one process.
 *
 * Calls per minute is an exact sliding window: a ring buffer holds the times of the tenant's last N
 * allowed calls, and a call is allowed when fewer than N fall within the last 60 s — that is, when the
 * oldest of them is at least 60 s old. O(1) per call, and unlike a token bucket or GCRA it never lets a
 * tenant exceed N in any 60 s span. Denied calls are not recorded, so hammering does not push the
 * window forward.
 *
 * Concurrency slots are keyed by call id and carry an expiry, so a server that never calls /v1/complete
 * loses the slot after its TTL rather than forever.
 *
 * Memory stays bounded: at most one sweep a minute drops windows with no call in the last minute and
 * slots past their expiry.
 */
export const WINDOW_MS = 60_000;

interface Window {
  times: Float64Array;
  /** Index of the oldest recorded call. */
  head: number;
  count: number;
}

export function createMemoryQuotaStore(options: { clock: Clock }): QuotaStore & { close(): Promise<void> } {
  const { clock } = options;
  const windows = new Map<string, Window>();
  const slots = new Map<string, Map<string, number>>();
  let lastSweep = clock.now();

  function sweep(now: number): void {
    if (now - lastSweep < WINDOW_MS) return;
    lastSweep = now;
    for (const [tenant, w] of windows) if (now - newest(w) >= WINDOW_MS) windows.delete(tenant);
    for (const [tenant, held] of slots) {
      pruneExpired(held, now);
      if (held.size === 0) slots.delete(tenant);
    }
  }

  function windowFor(tenant: string, perMinute: number): Window {
    let w = windows.get(tenant);
    if (!w) {
      w = { times: new Float64Array(perMinute), head: 0, count: 0 };
      windows.set(tenant, w);
    } else if (w.times.length !== perMinute) {
      w = resize(w, perMinute);
      windows.set(tenant, w);
    }
    return w;
  }

  return {
    async takeCall(tenant, perMinute): Promise<RateDecision> {
      const now = clock.now();
      sweep(now);
      if (!(perMinute >= 1)) return { allowed: false, retryAfterSeconds: WINDOW_MS / 1000 };
      const w = windowFor(tenant, Math.floor(perMinute));
      const size = w.times.length;
      if (w.count < size) {
        w.times[(w.head + w.count) % size] = now;
        w.count++;
        return { allowed: true, retryAfterSeconds: 0 };
      }
      const oldest = w.times[w.head]!;
      if (now - oldest >= WINDOW_MS) {
        w.times[w.head] = now;
        w.head = (w.head + 1) % size;
        return { allowed: true, retryAfterSeconds: 0 };
      }
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((oldest + WINDOW_MS - now) / 1000)) };
    },

    async acquireSlot(tenant, callId, limit, ttlMs) {
      const now = clock.now();
      sweep(now);
      let held = slots.get(tenant);
      if (!held) slots.set(tenant, (held = new Map()));
      // A call id already in flight is not taken twice: its one slot belongs to the call that opened it,
      // and a second acquire (a replayed id) must not be able to release that call's slot on its way out.
      const existing = held.get(callId);
      if (existing !== undefined && existing > now) return false;
      // Expired slots only matter when they could be what fills the limit, so they are pruned only then:
      // pruning on every call made each authorize O(calls in flight).
      if (held.size >= limit) {
        pruneExpired(held, now);
        if (held.size >= limit) return false;
      }
      held.set(callId, now + Math.max(1, ttlMs));
      return true;
    },

    async releaseSlot(tenant, callId) {
      const held = slots.get(tenant);
      const expiresAt = held?.get(callId);
      if (held === undefined || expiresAt === undefined) return false;
      held.delete(callId);
      if (held.size === 0) slots.delete(tenant);
      return expiresAt > clock.now();
    },

    async usage(tenant): Promise<QuotaUsage> {
      const now = clock.now();
      const w = windows.get(tenant);
      let calls = 0;
      if (w) for (let i = 0; i < w.count; i++) if (now - w.times[(w.head + i) % w.times.length]! < WINDOW_MS) calls++;
      const held = slots.get(tenant);
      let inFlight = 0;
      if (held) for (const expiresAt of held.values()) if (expiresAt > now) inFlight++;
      return { calls_last_minute: calls, in_flight: inFlight };
    },

    async forgetTenant(tenant) {
      windows.delete(tenant);
      slots.delete(tenant);
    },

    async close() {
      windows.clear();
      slots.clear();
    },
  };
}

function newest(w: Window): number {
  return w.count === 0 ? -Infinity : w.times[(w.head + w.count - 1) % w.times.length]!;
}

/** A policy reload changed the limit: keep the most recent calls that still fit. */
function resize(w: Window, perMinute: number): Window {
  const keep = Math.min(w.count, perMinute);
  const times = new Float64Array(perMinute);
  for (let i = 0; i < keep; i++) times[i] = w.times[(w.head + w.count - keep + i) % w.times.length]!;
  return { times, head: 0, count: keep };
}

function pruneExpired(held: Map<string, number>, now: number): void {
  for (const [callId, expiresAt] of held) if (expiresAt <= now) held.delete(callId);
}
