import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { run as authorize } from './authorize';
import { run as coldStart } from './cold-start';
import { run as openbao } from './openbao';
import { writeResult, type ScenarioResult } from './results';
import { run as scale } from './scale';
import { log, printRows } from './scenario';
import { run as tokens } from './tokens';

/**
 * `npm run bench`: every scenario in turn, each writing bench/results/<scenario>-<date>.json and
 * refreshing bench/results/latest.md. A scenario that fails is reported and the others still run.
 * Benchmarks other engineers add under bench/ (the MCP wrapper, kill-switch propagation) run after
 * ours when they are built, as their own processes; nothing here depends on them.
 */
const OURS: Array<[string, () => Promise<ScenarioResult>]> = [
  ['authorize', authorize],
  ['openbao', openbao],
  ['tokens', tokens],
  ['scale', scale],
  ['cold-start', coldStart],
];
const OTHERS = ['kill-switch', 'mcp-wrapper'];

function runScript(file: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { stdio: 'inherit' });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const failed: string[] = [];
  for (const [name, run] of OURS) {
    if (only.length > 0 && !only.includes(name)) continue;
    log(`\n=== ${name} ===`);
    try {
      const result = await run();
      writeResult(result);
      printRows(result);
    } catch (err) {
      failed.push(name);
      log(`${name} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  for (const name of OTHERS) {
    const file = join(__dirname, `${name}.js`);
    if ((only.length > 0 && !only.includes(name)) || !existsSync(file)) continue;
    log(`\n=== ${name} (bench/${name}.ts) ===`);
    if ((await runScript(file)) !== 0) failed.push(name);
  }
  log(failed.length === 0 ? '\nall scenarios ran; see bench/results/latest.md' : `\nfailed: ${failed.join(', ')} (the others are in bench/results/latest.md)`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench failed: ${err instanceof Error ? err.stack : String(err)}`);
    process.exit(1);
  },
);
