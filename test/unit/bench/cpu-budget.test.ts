import { budgetUs, coresBusy, medianCoresBusy, perRound } from '../../../bench/cpu-budget';
import { summarise } from '../../../bench/interleave';
import type { LoadResult } from '../../../bench/load';

const run = (rps: number, serverCpuUs: number | undefined, loadCpuUs: number | undefined): LoadResult => ({
  rps,
  p50Ms: 1,
  p99Ms: 2,
  ok: rps * 5,
  non2xx: 0,
  errors: 0,
  statusCodes: {},
  connections: 10,
  durationSec: 5,
  ...(serverCpuUs === undefined ? {} : { serverCpuUs }),
  ...(loadCpuUs === undefined ? {} : { loadCpuUs }),
});

test('cores busy is the CPU of server and load generator per answer, times answers per second', () => {
  // 10,000 answers/s × (60 + 40) µs = 1 s of CPU per second.
  expect(coresBusy(run(10_000, 60, 40))).toBeCloseTo(1, 10);
  expect(coresBusy(run(20_000, 60, 40))).toBeCloseTo(2, 10);
  // A run that did not measure one of them has no answer, not a low one.
  expect(coresBusy(run(10_000, 60, undefined))).toBeNaN();
});

test('the budget is all the CPU the cores have per answer at the target rate, less the side’s other processes', () => {
  // Baseline 20,000 answers/s; 0.8× of it is 16,000/s; 2 cores give 125 µs per answer in all, of which
  // the side's load generator takes 30: 95 µs for the server.
  expect(budgetUs(20_000, 0.8, 30, 2)).toBeCloseTo(95, 10);
  expect(budgetUs(20_000, 0.8, 30, 1)).toBeCloseTo(32.5, 10);
  // A side whose other processes alone spend more than the whole allowance has a negative budget: unreachable.
  expect(budgetUs(20_000, 0.8, 130, 2)).toBeLessThan(0);
});

test('per-round values pair round i of one side with round i of the other, and the median skips unmeasured rounds', () => {
  const a = summarise([run(100, 10, 1), run(100, 20, 1), run(100, 30, 1), run(100, undefined, 1)]);
  const b = summarise([run(100, 1, 1), run(100, 2, 1), run(100, 3, 1), run(100, 4, 1)]);
  // Rounds: 10-1, 20-2, 30-3, NaN (dropped): median 18.
  expect(perRound(a, b, (x, y) => (x.serverCpuUs ?? Number.NaN) - (y.serverCpuUs ?? Number.NaN))).toBe(18);
  expect(medianCoresBusy(summarise([run(10_000, 60, 40), run(10_000, 100, 100), run(10_000, 10, 10)]))).toBe(1);
});
