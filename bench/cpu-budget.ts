import { availableParallelism } from 'node:os';
import type { Summary } from './interleave';
import type { LoadResult } from './load';
import { median, round } from './stats';

/**
 * What a throughput target leaves to spend, when everything in a run shares the machine's cores.
 *
 * The server under test, the load generator (and for bench:mcp-wrapper the MCP server and its SDK
 * clients) run on the same cores. For a side to answer `target` × the baseline's answers/s, every
 * process of the run together may spend at most cores ÷ that rate of CPU per answer, even if the side
 * could spread its work over every core perfectly; what the side's own work may cost is that minus the
 * rest of the side's CPU per answer (its load generator, its clients). That is an upper bound: a server
 * on one event loop has only one core, whatever the machine has. `coresBusy` shows how many cores a run
 * really kept busy.
 */

export const CORES = availableParallelism();

/** Cores a run kept busy: the CPU of the measured processes and of the load generator, per second. */
export function coresBusy(run: LoadResult): number {
  return (((run.serverCpuUs ?? Number.NaN) + (run.loadCpuUs ?? Number.NaN)) * run.rps) / 1e6;
}

/** The median over rounds of a value computed from both sides of each round (they shared the machine's mood). */
export function perRound(a: Summary, b: Summary, f: (runA: LoadResult, runB: LoadResult) => number, digits = 1): number {
  const n = Math.min(a.runs.length, b.runs.length);
  const values: number[] = [];
  for (let i = 0; i < n; i++) values.push(f(a.runs[i]!, b.runs[i]!));
  return round(median(values.filter(Number.isFinite)), digits);
}

/** The median of `coresBusy` over a side's rounds. */
export function medianCoresBusy(side: Summary): number {
  return round(median(side.runs.map(coresBusy).filter(Number.isFinite)), 2);
}

/**
 * µs of CPU the side's own work may spend per answer for the side to reach `target` × the baseline's
 * answers/s on `cores` cores: all the CPU a second has, over that rate, minus what the side's other
 * processes (load generator, clients) spend per answer (`sideFixedUs`).
 */
export function budgetUs(baselineRps: number, target: number, sideFixedUs: number, cores = CORES): number {
  return (cores * 1e6) / (target * baselineRps) - sideFixedUs;
}
