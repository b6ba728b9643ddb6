import type { LoadResult } from './load';
import { median, round } from './stats';

/**
 * Runs several load steps in rounds (A, B, C, A, B, C, …) so that whatever else the machine is doing
 * lands on every side of a comparison, then reduces each side to medians. A short warm-up per step
 * first lets the JIT settle and fills caches (verified token, file handles) as in a running broker.
 */
export interface Step {
  label: string;
  run(durationSec: number): Promise<LoadResult>;
}

export interface Summary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Server CPU µs per 2xx answer, when measured. */
  serverCpuUs: number;
  /** Load generator CPU µs per 2xx answer, when measured. */
  loadCpuUs: number;
  /** Summed over every measured round: a valid run has none. */
  non2xx: number;
  errors: number;
  /** Follow-up requests (/v1/complete) that did not answer 2xx, over every measured round. */
  failedFollowUps: number;
  runs: LoadResult[];
}

export interface InterleaveOptions {
  rounds: number;
  durationSec: number;
  warmupSec: number;
  log?: (line: string) => void;
}

export async function interleave(steps: Step[], options: InterleaveOptions): Promise<Record<string, Summary>> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const runs = new Map<string, LoadResult[]>(steps.map((s) => [s.label, []]));
  if (options.warmupSec > 0) for (const step of steps) await step.run(options.warmupSec);
  for (let round = 1; round <= options.rounds; round++) {
    for (const step of steps) {
      const result = await step.run(options.durationSec);
      runs.get(step.label)!.push(result);
      const bad = result.non2xx + result.errors > 0 ? `  non-2xx=${result.non2xx} errors=${result.errors} ${JSON.stringify(result.statusCodes)}` : '';
      const followUp = result.followUps ? `  +${result.followUps.ok} completes${result.followUps.failed ? ` (${result.followUps.failed} failed)` : ''}` : '';
      const cpu = (result.serverCpuUs === undefined ? '' : `  server CPU ${result.serverCpuUs} µs/req`) + (result.loadCpuUs === undefined ? '' : `, load ${result.loadCpuUs}`);
      log(`  round ${round}/${options.rounds} ${step.label.padEnd(28)} ${String(result.rps).padStart(7)} req/s  p50 ${result.p50Ms.toFixed(3)} ms  p99 ${result.p99Ms.toFixed(3)} ms${cpu}${followUp}${bad}`);
    }
  }
  return Object.fromEntries([...runs].map(([label, list]) => [label, summarise(list)]));
}

export function summarise(list: LoadResult[]): Summary {
  return {
    rps: round(median(list.map((r) => r.rps)), 0),
    p50Ms: round(median(list.map((r) => r.p50Ms)), 3),
    p99Ms: round(median(list.map((r) => r.p99Ms)), 3),
    serverCpuUs: round(median(list.map((r) => r.serverCpuUs ?? Number.NaN).filter(Number.isFinite)), 1),
    loadCpuUs: round(median(list.map((r) => r.loadCpuUs ?? Number.NaN).filter(Number.isFinite)), 1),
    non2xx: list.reduce((n, r) => n + r.non2xx, 0),
    errors: list.reduce((n, r) => n + r.errors, 0),
    failedFollowUps: list.reduce((n, r) => n + (r.followUps?.failed ?? 0), 0),
    runs: list,
  };
}
