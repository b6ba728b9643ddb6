// Bundles the operator console (src/console/ui) into dist/console-ui with esbuild: one script, one
// stylesheet, no CDN and nothing fetched at run time, so the console works offline. Run by `npm run build`.
import { build } from 'esbuild';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ui = join(root, 'src', 'console', 'ui');
const out = join(root, 'dist', 'console-ui');

await mkdir(join(out, 'assets'), { recursive: true });
await build({
  entryPoints: [join(ui, 'main.ts')],
  outfile: join(out, 'assets', 'app.js'),
  bundle: true,
  format: 'iife',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
await copyFile(join(ui, 'index.html'), join(out, 'index.html'));
await copyFile(join(ui, 'app.css'), join(out, 'assets', 'app.css'));
await copyFile(join(ui, 'icon.svg'), join(out, 'assets', 'icon.svg'));
