import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../support/built-cli';

/**
 * packaging/systemd/bulkhead.service: `systemd-analyze verify` accepts it, `systemd-analyze security`
 * rates it below 2.0 ("OK"), and the settings the deployment relies on are there. .ci/run installs
 * Debian's systemd package when systemd-analyze is missing: without it this suite fails, it never skips.
 */
const run = promisify(execFile);
const UNIT = join(ROOT, 'packaging/systemd/bulkhead.service');
const text = readFileSync(UNIT, 'utf8');

/** Every `Key=value` of the unit, in order (a key may repeat, as SystemCallFilter does). */
const settings = text
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#') && !l.startsWith('['))
  .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const);
const all = (key: string) => settings.filter(([k]) => k === key).map(([, v]) => v);
const only = (key: string) => {
  const values = all(key);
  expect({ key, count: values.length }).toEqual({ key, count: 1 });
  return values[0]!;
};

describe('the systemd unit', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bh-unit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('passes systemd-analyze verify and rates OK on systemd-analyze security', async () => {
    // The same file with this machine's node in ExecStart: verify checks that the binary exists.
    const copy = join(dir, 'bulkhead.service');
    writeFileSync(copy, text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
    const verified = await run('systemd-analyze', ['verify', copy]);
    expect(verified.stderr).toBe('');
    const security = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', copy]);
    const level = Number(/Overall exposure level for bulkhead\.service: ([0-9.]+)/.exec(security.stdout)?.[1]);
    expect(level).toBeLessThan(2);
  });

  it('runs node directly, reloads the policy with SIGHUP and stops with SIGTERM', () => {
    expect(only('ExecStart')).toMatch(/^\/usr\/bin\/node \/opt\/bulkhead\/dist\/src\/cli\/main\.js serve --config \/etc\/bulkhead\/policy\.yaml /);
    expect(only('ExecStart')).toContain('--listen unix:/run/bulkhead/broker.sock');
    expect(only('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(only('KillSignal')).toBe('SIGTERM');
    // The socket lives in the RuntimeDirectory and the state in the StateDirectory the unit declares.
    expect(only('RuntimeDirectory')).toBe('bulkhead');
    expect(only('StateDirectory')).toBe('bulkhead');
    expect(all('Environment')).toContain('BULKHEAD_DATA_DIR=/var/lib/bulkhead');
  });

  it('is hardened: no privileges, read-only system, AF_UNIX among the allowed families, a syscall filter', () => {
    expect(only('DynamicUser')).toBe('yes');
    expect(only('NoNewPrivileges')).toBe('yes');
    expect(only('ProtectSystem')).toBe('strict');
    expect(only('ProtectHome')).toBe('yes');
    expect(only('PrivateTmp')).toBe('yes');
    expect(only('CapabilityBoundingSet')).toBe('');
    expect(only('RestrictAddressFamilies').split(' ').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(all('SystemCallFilter')).toEqual(['@system-service', '~@privileged @resources']);
    expect(only('UMask')).toBe('0077');
  });
});
