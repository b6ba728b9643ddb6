import { writeResult, type ScenarioResult } from './results';
import { median, round } from './stats';
import type { Summary } from './interleave';

/**
 * What every scenario shares: its settings (from the environment, so a quick or a long run needs no
 * code change) and how it runs when started on its own.
 *
 *   BENCH_DURATION     seconds per measured run (default 6)
 *   BENCH_ROUNDS       interleaved rounds per comparison (default 3)
 *   BENCH_CONNECTIONS  autocannon connections, the same for every server compared (default 10)
 *   BENCH_WARMUP       seconds of warm-up per server before the rounds (default 2)
 *   BENCH_CPU_PROF_DIR when set, the broker under test runs with --cpu-prof into this directory
 *   BENCH_NODE_FLAGS   more node flags for the broker (and bench:mcp-wrapper's MCP servers), space-separated,
 *                      e.g. "--perf-basic-prof" for `perf record`, "--trace-deopt"
 *   BENCH_NOTE         a note stored with the result (e.g. "before the local-store change")
 */
export interface Settings {
  durationSec: number;
  rounds: number;
  connections: number;
  warmupSec: number;
  cpuProfDir?: string;
  nodeFlags?: string[];
}

export function settingsFromEnv(env: NodeJS.ProcessEnv = process.env): Settings {
  const num = (name: string, fallback: number) => {
    const value = Number(env[name] ?? fallback);
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
    return value;
  };
  return {
    durationSec: num('BENCH_DURATION', 6),
    rounds: Math.floor(num('BENCH_ROUNDS', 3)),
    connections: Math.floor(num('BENCH_CONNECTIONS', 10)),
    warmupSec: env.BENCH_WARMUP === '0' ? 0 : num('BENCH_WARMUP', 2),
    ...(env.BENCH_CPU_PROF_DIR ? { cpuProfDir: env.BENCH_CPU_PROF_DIR } : {}),
    ...(env.BENCH_NODE_FLAGS?.trim() ? { nodeFlags: env.BENCH_NODE_FLAGS.trim().split(/\s+/) } : {}),
  };
}

/** Node flags for the broker child: a CPU profile, and any others, when asked for. */
export function brokerExecArgv(settings: Settings): string[] {
  return [...(settings.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${settings.cpuProfDir}`] : []), ...(settings.nodeFlags ?? [])];
}

/**
 * The ratio of two sides, taken round by round and then the median: both sides of one round shared the
 * machine's mood, so their ratio is steadier than a ratio of two medians.
 */
export function pairedRatio(a: Summary, b: Summary, pick: (r: Summary['runs'][number]) => number, digits = 2, pickB = pick): number {
  const n = Math.min(a.runs.length, b.runs.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push(pick(a.runs[i]!) / pickB(b.runs[i]!));
  return round(median(ratios), digits);
}

export function log(line: string): void {
  process.stderr.write(line + '\n');
}

/** When a scenario file is run directly: run it, write its result, print the rows. */
export function runIfMain(mod: NodeModule, run: () => Promise<ScenarioResult>): void {
  if (require.main !== mod) return;
  run().then(
    (result) => {
      // BENCH_NOTE labels a run in its JSON and in latest.md (e.g. "before the local-store change").
      if (process.env.BENCH_NOTE) result.notes = [...(result.notes ?? []), process.env.BENCH_NOTE];
      const file = writeResult(result);
      printRows(result);
      log(`wrote ${file} and bench/results/latest.md`);
    },
    (err: unknown) => {
      log(`bench failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}

export function printRows(result: ScenarioResult): void {
  log(`\n${result.title}`);
  for (const row of result.rows) {
    const met = row.met === undefined ? '' : row.met ? '  [met]' : '  [NOT met]';
    log(`  ${row.metric.padEnd(58)} ${String(row.value).padStart(10)} ${row.unit ?? ''}${row.target ? `  target ${row.target}` : ''}${met}`);
  }
}
