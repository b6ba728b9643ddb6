import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './authorize';
import { formatSummary, newestProfile, summariseProfile } from './profile-summary';
import { log } from './scenario';

/**
 * `npm run bench:profile`: the authorize scenario once, with the broker under `node --cpu-prof`, then
 * where its CPU went (self time by package and function, inclusive time of our functions). Results are
 * not written: a profiled run is slower. Open the .cpuprofile in Chrome DevTools for the flame chart.
 */
async function main(): Promise<void> {
  const dir = process.env.BENCH_CPU_PROF_DIR ?? mkdtempSync(join(tmpdir(), 'bulkhead-profile-'));
  process.env.BENCH_CPU_PROF_DIR = dir;
  process.env.BENCH_ROUNDS ??= '1';
  // The scenario reads its settings when it runs, so the environment above applies.
  await run();
  const file = newestProfile(dir);
  process.stdout.write(`\n${file}\n${formatSummary(summariseProfile(JSON.parse(readFileSync(file, 'utf8')), Number(process.env.BENCH_PROFILE_TOP ?? 30)))}\n`);
  log(`\nprofile kept at ${file}`);
}

main().catch((err: unknown) => {
  log(`profile failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exitCode = 1;
});
