import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newestProfile, summariseProfile, type Profile } from '../../../bench/profile-summary';

// A hand-made profile: root → authorize (src) → sha256 (node:) and root → (idle).
const profile: Profile = {
  nodes: [
    { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 4] },
    { id: 2, callFrame: { functionName: 'authorize', url: 'file:///repo/dist/src/authorize/authorizer.js', lineNumber: 9 }, children: [3] },
    { id: 3, callFrame: { functionName: 'digest', url: 'node:internal/crypto/hash', lineNumber: 0 }, children: [] },
    { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 }, children: [] },
  ],
  samples: [2, 3, 3, 3, 4, 4, 4, 4],
  timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
  startTime: 0,
  endTime: 8000,
};

test('self time leaves idle out, and our functions get their inclusive time', () => {
  const summary = summariseProfile(profile);
  expect(summary.totalMs).toBe(4);
  expect(summary.selfByFunction[0]).toMatchObject({ name: 'digest node:internal/crypto/hash:1', ms: 3, percent: 75 });
  expect(summary.selfByPackage.map((e) => e.name)).toEqual(['node: core', expect.stringMatching(/^ours: /)]);
  expect(summary.inclusiveOurs[0]).toMatchObject({ ms: 4, percent: 100 });
  expect(summary.inclusiveOurs[0]!.name).toMatch(/^authorize /);
});

test('the newest profile of a directory is a main thread’s: a worker thread’s, written later, is passed over', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulkhead-profiles-'));
  try {
    const main = join(dir, 'CPU.20261204.192345.27424.0.001.cpuprofile');
    const worker = join(dir, 'CPU.20261204.192345.27424.1.002.cpuprofile');
    const older = join(dir, 'CPU.20261204.182345.11111.0.001.cpuprofile');
    for (const [file, seconds] of [[older, 100], [main, 200], [worker, 300]] as const) {
      writeFileSync(file, '{}');
      utimesSync(file, seconds, seconds);
    }
    expect(newestProfile(dir)).toBe(main);
    expect(newestProfile(worker)).toBe(worker); // a file named directly is taken as it is
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
