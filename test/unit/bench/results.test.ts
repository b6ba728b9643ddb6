import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestResults, renderLatest, writeResult, type ScenarioResult } from '../../../bench/results';
import { median, percentile, ratio } from '../../../bench/stats';

const machine = (date: string) => ({ cpus: 2, cpuModel: 'test cpu', node: 'v20.0.0', platform: 'linux-x64', memoryMb: 1024, loadAverage: 0.5, date });
const result = (scenario: string, date: string, value: number): ScenarioResult => ({
  scenario,
  title: scenario,
  machine: machine(date),
  settings: { rounds: 3 },
  rows: [{ metric: 'ratio', value, target: '≥ 0.8', met: value >= 0.8 }],
});

test('latest.md keeps the newest result of every scenario, so running one scenario leaves the others', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-bench-results-'));
  try {
    writeResult(result('authorize', '2026-01-01T10:00:00.000Z', 0.5), dir);
    writeResult(result('tokens', '2026-01-01T10:05:00.000Z', 0.9), dir);
    writeResult(result('authorize', '2026-01-02T10:00:00.000Z', 0.85), dir);
    await writeFile(join(dir, 'mcp-wrapper.md'), '# other\n');
    expect(latestResults(dir).map((r) => [r.scenario, r.rows[0]!.value])).toEqual([
      ['authorize', 0.85],
      ['tokens', 0.9],
    ]);
    writeResult(result('tokens', '2026-01-02T11:00:00.000Z', 0.7), dir);
    const md = await readFile(join(dir, 'latest.md'), 'utf8');
    expect(md).toContain('| authorize | ratio | 0.85 | ≥ 0.8 | yes |');
    expect(md).toContain('| tokens | ratio | 0.7 | ≥ 0.8 | **no** |');
    expect(md).toContain('[mcp-wrapper.md](mcp-wrapper.md)');
    expect(md).not.toContain('| authorize | ratio | 0.5 |');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the table names the machine each scenario ran on', () => {
  const md = renderLatest([result('scale', '2026-01-01T10:00:00.000Z', 1)]);
  expect(md).toContain('| scale | 2026-01-01T10:00:00.000Z | 2 × test cpu | v20.0.0 | 0.5 | rounds=3 |');
});

test('medians and percentiles are the textbook ones; a missing side makes a ratio n/a, not a number', () => {
  expect(median([5, 1, 3])).toBe(3);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
  expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10);
  expect(ratio(3, 4)).toBe(0.75);
  expect(ratio(3, 0)).toBeNaN();
});
