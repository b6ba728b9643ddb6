import { summariseProfile, type Profile } from '../../../bench/profile-summary';

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
