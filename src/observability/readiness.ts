/**
 * One readiness check's answer: ready, or the reason it is not, in words an operator can act on. The
 * reason names a component and what it saw (an errno, "connection refused"), never a tenant: /readyz is
 * a platform endpoint and carries no tenant id (DESIGN.md, two pipelines).
 */
export type Readiness = { ok: true } | { ok: false; problem: string };

export const READY: Readiness = Object.freeze({ ok: true });

export const notReady = (problem: string): Readiness => ({ ok: false, problem });

/** How long one check may take before /readyz calls it not ready. */
export const READINESS_TIMEOUT_MS = 2000;

/**
 * Runs a check, bounded: a hung dependency answers "not ready" within `ms` instead of hanging /readyz.
 * `label` (a backend's name) prefixes whatever problem it reports, a thrown error or the timeout.
 */
export async function boundedCheck(check: () => Promise<Readiness>, ms: number, label?: string): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve(notReady(`no answer within ${ms} ms`)), ms);
  });
  try {
    const answer = await Promise.race([check().catch((err: unknown) => notReady(describeError(err))), timeout]);
    return answer.ok || !label ? answer : notReady(`${label}: ${answer.problem}`);
  } finally {
    clearTimeout(timer);
  }
}

/** An error's code and message, the way a readiness problem states it (one line). */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0]! : String(err);
  return typeof e?.code === 'string' && !message.includes(e.code) ? `${e.code}: ${message}` : message;
}
