import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A small tmpfs of the test's own, to fill up and free again: a real full disk (write(2) fails with
 * ENOSPC) without touching anyone else's filesystem. Mounting needs root (CI runs as root). Where it
 * cannot mount, `describeWithTmpfs` skips with a loud warning — or, with BULKHEAD_REQUIRE_UPSTREAMS=1 or
 * CI=true, fails, so a platform that cannot run these tests never passes them silently.
 */
export interface Tmpfs {
  dir: string;
  /** Writes a filler file until the filesystem refuses (ENOSPC). */
  fill(): void;
  /** Removes the filler: the space is back. */
  free(): void;
  unmount(): void;
}

const FILLER = '.filler';

export function mountTmpfs(sizeBytes: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'bulkhead-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmdirSync(dir);
    throw err;
  }
  return {
    dir,
    fill() {
      const fd = openSync(join(dir, FILLER), 'a');
      try {
        // Big chunks first, then single bytes, so not even a partial block is left.
        for (const size of [1 << 16, 1 << 12, 1]) {
          const chunk = Buffer.alloc(size, 0x61);
          for (;;) {
            try {
              if (writeSync(fd, chunk) < size) break;
            } catch (err) {
              if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
              throw err;
            }
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      unlinkSync(join(dir, FILLER));
    },
    unmount() {
      execFileSync('umount', [dir], { stdio: 'pipe' });
      rmdirSync(dir);
    },
  };
}

function probe(): string | null {
  try {
    mountTmpfs(1 << 20).unmount();
    return null;
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    return (e.stderr?.toString().trim() || e.message).split('\n')[0]!;
  }
}

let probed: string | null | undefined;

/** `describe` for suites that need a tmpfs of their own. */
export function describeWithTmpfs(title: string, fn: () => void): void {
  probed ??= probe();
  const why = probed;
  if (why === null) {
    describe(title, fn);
    return;
  }
  const required = process.env.BULKHEAD_REQUIRE_UPSTREAMS === '1' || process.env.CI === 'true';
  if (required) {
    describe(title, () => {
      test('can mount a tmpfs of its own (required: BULKHEAD_REQUIRE_UPSTREAMS=1 or CI)', () => {
        throw new Error(`cannot mount a tmpfs for the full-disk tests: ${why} (run as root)`);
      });
    });
    return;
  }
  console.warn(`*** SKIPPING "${title}": cannot mount a tmpfs (${why}); run as root, or set BULKHEAD_REQUIRE_UPSTREAMS=1 to make this a failure ***`);
  describe.skip(title, fn);
}
