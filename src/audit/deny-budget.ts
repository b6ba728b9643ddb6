import type { Logger } from 'pino';
import type { AuditEvent, AuditLog } from './audit-log';

/**
 * Denies cost the caller nothing, so without a budget a tenant could fill the audit storage every
 * tenant shares (on the embedded default, one disk) and make the broker audit_unavailable for all.
 * Each tenant may have `perWindow(tenant)` denies written to its stream one by one per window; its
 * further denies are answered without waiting for a write and counted, and at the end of the window
 * — or at shutdown — one `deny_summary` record says how many there were and for which reasons.
 * Nothing is dropped silently: a summary that cannot be written is kept and retried at the next flush.
 *
 * The budget is per process: scaled out, a tenant writes at most replicas × budget denies per window.
 */
export interface DenyBudgetOptions {
  audit: Pick<AuditLog, 'append'>;
  /** The tenant's audited-deny budget per window (`quotas.audited_denies_per_minute`). */
  perWindow(tenant: string): number;
  /** Window length (default one minute, which the policy key is named for; tests shorten it). */
  windowMs?: number;
  now?: () => number;
  logger: Pick<Logger, 'warn' | 'error'>;
}

export interface DenyBudget {
  /** Writes the deny (resolving once durable, or once the write failed) or, past the budget, counts it. */
  record(tenant: string, event: AuditEvent & { reason: string }): Promise<void>;
  /** Writes the summaries of the window that ends now and starts the next one. */
  flush(): Promise<void>;
  /** Stops the window timer and writes what is pending. */
  close(): Promise<void>;
}

interface Window {
  written: number;
  since: number;
  suppressed: number;
  reasons: Record<string, number>;
}

export function createDenyBudget(options: DenyBudgetOptions): DenyBudget {
  const windowMs = options.windowMs ?? 60_000;
  const now = options.now ?? Date.now;
  const windows = new Map<string, Window>();
  let flushing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => void flush(), windowMs);
  timer.unref();

  function windowOf(tenant: string): Window {
    let w = windows.get(tenant);
    if (!w) windows.set(tenant, (w = { written: 0, since: now(), suppressed: 0, reasons: Object.create(null) as Record<string, number> }));
    return w;
  }

  async function writeSummaries(): Promise<void> {
    const ended = now();
    const due = [...windows.entries()];
    windows.clear();
    for (const [tenant, w] of due) {
      if (w.suppressed === 0) continue;
      const event: AuditEvent = { type: 'deny_summary', decision: 'deny', denied: w.suppressed, reasons: { ...w.reasons }, since: new Date(w.since).toISOString() };
      try {
        await options.audit.append(tenant, event);
      } catch (err) {
        // Kept, not lost: folded into the tenant's next window, whose summary carries them.
        const next = windowOf(tenant);
        next.since = Math.min(next.since, w.since);
        next.suppressed += w.suppressed;
        for (const [reason, n] of Object.entries(w.reasons)) next.reasons[reason] = (next.reasons[reason] ?? 0) + n;
        options.logger.warn({ err, denied: w.suppressed, ended }, 'deny summary could not be written; retrying at the next flush');
      }
    }
  }

  function flush(): Promise<void> {
    flushing = flushing.then(writeSummaries, writeSummaries);
    return flushing;
  }

  return {
    async record(tenant, event) {
      const w = windowOf(tenant);
      if (w.written < options.perWindow(tenant)) {
        w.written++;
        await options.audit.append(tenant, event).catch(() => undefined);
        return;
      }
      w.suppressed++;
      w.reasons[event.reason] = (w.reasons[event.reason] ?? 0) + 1;
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
      for (const [tenant, w] of windows) {
        if (w.suppressed > 0) options.logger.error({ tenant, denied: w.suppressed, reasons: w.reasons }, 'deny summary could not be written at shutdown');
      }
    },
  };
}
