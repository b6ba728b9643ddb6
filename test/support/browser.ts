import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page, type Response } from 'playwright-core';
import type { Harness } from './broker-harness';
import { requireUpstreamsFlag } from './upstreams';

/**
 * Debian's Chromium driven by playwright-core (no downloaded browser): `apt-get install chromium`,
 * which .ci/run does through scripts/browser.sh. Like the real upstreams, a missing browser FAILS the
 * suite under BULKHEAD_REQUIRE_UPSTREAMS=1 or CI=true, and is skipped loudly otherwise.
 *
 * One headless browser per test file: the machine has two cores shared by everyone.
 */
export const CHROMIUM = process.env.BULKHEAD_CHROMIUM ?? '/usr/bin/chromium';

export function describeWithChromium(title: string, fn: () => void): void {
  if (existsSync(CHROMIUM)) {
    describe(title, fn);
    return;
  }
  const why = `Chromium not found at ${CHROMIUM}: install it with \`bash scripts/browser.sh\` (apt-get install chromium)`;
  if (requireUpstreamsFlag()) {
    describe(title, () => {
      test('needs Chromium (BULKHEAD_REQUIRE_UPSTREAMS=1)', () => {
        throw new Error(why);
      });
    });
    return;
  }
  console.warn(`\n*** SKIPPING "${title}": ${why}. Set BULKHEAD_REQUIRE_UPSTREAMS=1 to make this a failure. ***\n`);
  describe.skip(title, fn);
}

export async function launchChromium(): Promise<Browser> {
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/**
 * Everything the browser received, for the leak scan: each response body is added to the harness's
 * exchanges (so findLeaks searches it like any other answer), and `snapshot` adds what the page holds
 * at that moment (its DOM, input values, storage). Console errors (a CSP violation is one) are kept.
 */
export function recordBrowserSession(h: Harness, page: Page) {
  const pending: Promise<void>[] = [];
  const consoleErrors: string[] = [];
  page.on('response', (response: Response) => {
    pending.push(
      response
        .body()
        .then((body) => void h.exchanges.push({ method: response.request().method(), path: `browser ${new URL(response.url()).pathname}`, status: response.status(), text: body.toString('utf8') }))
        .catch(() => undefined),
    );
  });
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => void consoleErrors.push(`page error: ${error.message}`));
  return {
    consoleErrors,
    /** Console session ids seen during the run (searched for like any other secret). */
    sessionIds: [] as string[],
    async snapshot(label: string): Promise<void> {
      // A string, evaluated in the page (the test program is compiled without the DOM types).
      const held = await page.evaluate(`({
        html: document.documentElement.outerHTML,
        inputs: [...document.querySelectorAll('input')].map((i) => i.value),
        storage: JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }),
        cookie: document.cookie,
      })`);
      h.exchanges.push({ method: 'DOM', path: `browser page ${label}`, status: 200, text: JSON.stringify(held) });
    },
    /** Waits until every response seen so far has been recorded. */
    settled: () => Promise.all(pending).then(() => undefined),
  };
}
