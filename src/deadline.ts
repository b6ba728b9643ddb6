/**
 * The one way Bulkhead bounds a wait in time: a deadline is an AbortSignal driven by a plain, strongly
 * held `setTimeout`, optionally joined to a caller's signal.
 *
 * Why not `AbortSignal.timeout()` / `AbortSignal.any()`: Node keeps a timeout signal (and the sources of
 * a composite signal) only weakly, so once nothing else references it a garbage collection can drop it
 * and the timeout then never fires (Node 20 loses `AbortSignal.any([outer, AbortSignal.timeout(t)])`
 * this way; a call then waits for the outer budget instead of the adapter's own `timeout`). Here the
 * timer's callback holds the controller, and the timer list holds the timer until it fires or is
 * cancelled, so a bound holds whatever the collector does.
 *
 * Every deadline must be cancelled when its work ends (`withDeadline` does it), so a long-lived parent
 * signal does not collect listeners and no timer outlives its call.
 */

/** The abort reason of a deadline that passed; `bound` names which limit fired (for logs and tests). */
export class DeadlineExceeded extends Error {
  override readonly name = 'TimeoutError';
  constructor(
    readonly bound: string,
    readonly ms: number,
  ) {
    super(`${bound} did not finish within ${ms} ms`);
  }
}

export interface Deadline {
  /** Aborted when the time is up (reason: DeadlineExceeded) or when the parent aborts (its reason). */
  readonly signal: AbortSignal;
  cancel(): void;
}

/** Starts a deadline `ms` from now (already passed if `ms` ≤ 0); `bound` names it in the abort reason. */
export function startDeadline(ms: number, bound: string, parent?: AbortSignal): Deadline {
  const controller = new AbortController();
  const onParentAbort = () => finish(parent!.reason);
  const timer = setTimeout(() => finish(new DeadlineExceeded(bound, Math.max(0, Math.round(ms)))), Math.max(0, ms));
  // A pending bound is no reason to keep the process alive; it is still held by the timer list.
  timer.unref();
  function finish(reason?: unknown): void {
    clearTimeout(timer);
    parent?.removeEventListener('abort', onParentAbort);
    if (reason !== undefined && !controller.signal.aborted) controller.abort(reason);
  }
  if (parent?.aborted) finish(parent.reason);
  else if (ms <= 0) finish(new DeadlineExceeded(bound, Math.max(0, Math.round(ms))));
  else parent?.addEventListener('abort', onParentAbort, { once: true });
  return { signal: controller.signal, cancel: () => finish() };
}

/**
 * Runs `work` under a deadline and settles no later than it: if `work` ignores the signal, the caller
 * is still released with the abort reason. The deadline is cancelled when `work` settles.
 */
export async function withDeadline<T>(ms: number, bound: string, parent: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = startDeadline(ms, bound, parent);
  try {
    return await settleBy(work(deadline.signal), deadline.signal);
  } finally {
    deadline.cancel();
  }
}

/**
 * `promise`, or a rejection with the signal's reason as soon as it aborts (the promise's own outcome is
 * then ignored: shared work, such as one login for many callers, goes on for the others).
 */
export function settleBy<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => undefined);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Which deadline ended `err`, if one did: the first DeadlineExceeded in its cause chain. */
export function deadlineBound(err: unknown): string | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof DeadlineExceeded) return e.bound;
  }
  return undefined;
}

/** True if `err` was ended by the deadline named `bound`. */
export function isDeadlineExceeded(err: unknown, bound: string): boolean {
  return deadlineBound(err) === bound;
}
