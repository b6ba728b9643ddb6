import { mkdtemp, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCachedFileReader } from '../../../adapters/cached-file-reader';

// The local store reads its sealed files through this on every tool call: a cached copy must never hide
// a change made on disk (by this process, or by `bulkhead secret` in another one), above all a shred.
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bulkhead-cached-read-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a missing file reads as undefined, and is read once it appears', async () => {
  const files = createCachedFileReader();
  const path = join(dir, 'acme.json');
  expect(await files.read(path)).toBeUndefined();
  await writeFile(path, 'first');
  expect(await files.read(path)).toBe('first');
});

test('a file replaced by rename with content of the same length is read anew', async () => {
  const files = createCachedFileReader();
  const path = join(dir, 'acme.json');
  await writeFile(path, 'value-AAAA');
  expect(await files.read(path)).toBe('value-AAAA');
  await writeFile(`${path}.tmp`, 'value-BBBB');
  await rename(`${path}.tmp`, path);
  expect(await files.read(path)).toBe('value-BBBB');
});

test('an in-place rewrite of the same length is read anew', async () => {
  const files = createCachedFileReader();
  const path = join(dir, 'acme.key');
  await writeFile(path, 'sealed-key-1');
  expect(await files.read(path)).toBe('sealed-key-1');
  await truncate(path, 0);
  await writeFile(path, 'sealed-key-2', { flag: 'r+' });
  expect(await files.read(path)).toBe('sealed-key-2');
});

test('a deleted file (a shredded data key) reads as undefined at once, not from the cache', async () => {
  const files = createCachedFileReader();
  const path = join(dir, 'acme.key');
  await writeFile(path, 'sealed-key');
  expect(await files.read(path)).toBe('sealed-key');
  await unlink(path);
  expect(await files.read(path)).toBeUndefined();
});

test('each path is cached on its own: one tenant\'s file never answers for another\'s', async () => {
  const files = createCachedFileReader({ maxEntries: 1 });
  await writeFile(join(dir, 'acme.json'), 'acme');
  await writeFile(join(dir, 'globex.json'), 'globex');
  expect(await files.read(join(dir, 'acme.json'))).toBe('acme');
  expect(await files.read(join(dir, 'globex.json'))).toBe('globex');
  expect(await files.read(join(dir, 'acme.json'))).toBe('acme');
});
