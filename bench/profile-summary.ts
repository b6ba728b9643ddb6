import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): where self time goes, by function, by file and
 * by package, plus inclusive time of our own functions (src/, adapters/). Usage:
 *   node dist/bench/profile-summary.js <file.cpuprofile | dir (newest profile in it)> [top=25]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Entry {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  totalMs: number;
  selfByFunction: Entry[];
  selfByPackage: Entry[];
  inclusiveOurs: Entry[];
}

const ROOT = join(__dirname, '..', '..');

function where(url: string): string {
  if (url === '') return '(native)';
  const path = url.startsWith('file://') ? url.slice('file://'.length) : url;
  if (path.startsWith('node:')) return path;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  // Compiled code runs from dist/: name it by its source path (src/…, adapters/…).
  const dist = path.lastIndexOf('/dist/');
  return dist >= 0 ? path.slice(dist + '/dist/'.length) : relative(ROOT, path);
}

function packageOf(url: string): string {
  const w = where(url);
  if (w === '(native)') return '(native / GC / idle)';
  if (w.startsWith('node:')) return 'node: core';
  if (/^(src|adapters|rotation)\//.test(w)) return `ours: ${w.split('/').slice(0, 2).join('/')}`;
  if (w.startsWith('bench/')) return 'bench';
  const parts = w.split('/');
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

function top(map: Map<string, number>, totalUs: number, n: number): Entry[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, percent: Math.round((us / totalUs) * 1000) / 10 }));
}

export function summariseProfile(profile: Profile, n = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  // Idle time is not cost: leave it out of the percentages.
  const idleUs = profile.nodes.filter((nd) => nd.callFrame.functionName === '(idle)').reduce((sum, nd) => sum + (selfUs.get(nd.id) ?? 0), 0);
  const busyUs = totalUs - idleUs;

  const fnKey = (node: ProfileNode) => `${node.callFrame.functionName || '(anonymous)'} ${where(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
  const selfByFunction = new Map<string, number>();
  const selfByPackage = new Map<string, number>();
  for (const node of profile.nodes) {
    if (node.callFrame.functionName === '(idle)') continue;
    const us = selfUs.get(node.id) ?? 0;
    if (us === 0) continue;
    selfByFunction.set(fnKey(node), (selfByFunction.get(fnKey(node)) ?? 0) + us);
    selfByPackage.set(packageOf(node.callFrame.url), (selfByPackage.get(packageOf(node.callFrame.url)) ?? 0) + us);
  }

  // Inclusive time of our functions, counting each function once per stack (recursion is not double counted).
  const inclusive = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const node = byId.get(id)!;
    let us = selfUs.get(id) ?? 0;
    const key = fnKey(node);
    const ours = /^(src|adapters|rotation)\//.test(where(node.callFrame.url));
    const added = ours && !onStack.has(key);
    if (added) onStack.add(key);
    for (const child of node.children ?? []) us += walk(child, onStack);
    if (added) {
      onStack.delete(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
    return us;
  };
  walk(profile.nodes[0]!.id, new Set());

  return {
    totalMs: Math.round(busyUs / 1000),
    selfByFunction: top(selfByFunction, busyUs, n),
    selfByPackage: top(selfByPackage, busyUs, n),
    inclusiveOurs: top(inclusive, busyUs, n),
  };
}

export function newestProfile(pathOrDir: string): string {
  if (!statSync(pathOrDir).isDirectory()) return pathOrDir;
  // Main threads only: `--cpu-prof` also writes one per worker thread (CPU.<date>.<time>.<pid>.<thread>.<n>),
  // and the logger's writer thread is one.
  const files = readdirSync(pathOrDir)
    .filter((f) => f.endsWith('.cpuprofile') && !/\.\d+\.[1-9]\d*\.\d+\.cpuprofile$/.test(f))
    .map((f) => join(pathOrDir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (files.length === 0) throw new Error(`no .cpuprofile in ${pathOrDir}`);
  return files[0]!;
}

export function formatSummary(summary: ProfileSummary): string {
  const table = (title: string, entries: Entry[]) =>
    [`${title}`, ...entries.map((e) => `  ${e.percent.toFixed(1).padStart(5)}%  ${e.ms.toFixed(1).padStart(9)} ms  ${e.name}`)].join('\n');
  return [
    `busy CPU time: ${summary.totalMs} ms (idle excluded)`,
    table('self time by package', summary.selfByPackage),
    table('self time by function', summary.selfByFunction),
    table('inclusive time of our functions (src/, adapters/)', summary.inclusiveOurs),
  ].join('\n\n');
}

if (require.main === module) {
  const target = process.argv[2];
  if (!target) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile | dir> [top]\n');
    process.exit(2);
  }
  const file = newestProfile(target);
  const summary = summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25));
  process.stdout.write(`${file}\n${formatSummary(summary)}\n`);
}
