/**
 * Polls `predicate` every 25 ms until it holds, for state another process reaches on its own (a
 * replica reloading its policy, a signal handled); throws `what` after `attempts` tries. Not a timing
 * assertion: the bound only keeps a broken run from hanging.
 */
export async function until(predicate: () => Promise<boolean>, what: string, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(what);
}
