import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import express, { Router } from 'express';

/**
 * The console's page and its bundle, built by `npm run build` (scripts/build-console.mjs, esbuild)
 * into dist/console-ui/. Nothing is fetched from elsewhere at run time, so the console works offline.
 * Every route of the single-page app answers the same index.html; the page picks its view from the
 * URL fragment.
 */
export function findConsoleAssets(start = __dirname): string | null {
  // From src/console (ts-jest) or dist/src/console (built): the package root is the first parent
  // holding package.json.
  for (let dir = start; dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      const built = join(dir, 'dist', 'console-ui');
      return existsSync(join(built, 'index.html')) ? built : null;
    }
  }
  return null;
}

export function consoleAssets(dir: string): Router {
  const router = Router();
  const index = readFileSync(join(dir, 'index.html'));
  const page: express.RequestHandler = (_req, res) => {
    res.type('html').send(index);
  };
  router.get('/', page);
  router.use('/assets', express.static(join(dir, 'assets'), { index: false, redirect: false, dotfiles: 'deny', fallthrough: true, etag: false, lastModified: false }));
  return router;
}
