import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpAnswer } from '../../../bench/cluster';

/** Calls until the answer is 200 (recovered); every answer up to and including that one is returned for inspection. */
export async function untilAllowed(call: () => Promise<HttpAnswer>, timeoutMs = 60_000): Promise<HttpAnswer[]> {
  const seen: HttpAnswer[] = [];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await call();
    seen.push(answer);
    if (answer.status === 200) return seen;
    if (Date.now() > deadline) throw new Error(`no recovery: last answer ${answer.status} ${JSON.stringify(answer.body)}`);
    await sleep(100);
  }
}
