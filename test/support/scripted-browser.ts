/**
 * The "browser" of the e2e login tests: plain HTTP with a cookie jar, following redirects one by one
 * (so every hop can be looked at), reading and submitting the simple HTML forms the broker and the
 * test IdP serve. Cookies are scoped by host and path as a browser scopes them (not by port: two
 * servers on 127.0.0.1 share cookies, as they would in a real browser). No JavaScript is needed by any
 * page, so no real browser is either.
 */

export interface Hop {
  method: string;
  url: string;
  status: number;
  location?: string;
}

export interface Page {
  url: string;
  status: number;
  html: string;
}

interface Cookie {
  name: string;
  value: string;
  host: string;
  path: string;
}

export class ScriptedBrowser {
  readonly hops: Hop[] = [];
  private cookies: Cookie[] = [];

  /** Follows redirects from `url` until a page, or until `stopAt` matches the next location (not fetched). */
  async navigate(url: string, options: { stopAt?: (location: string) => boolean; method?: 'GET' | 'POST'; form?: URLSearchParams } = {}): Promise<Page | { stoppedAt: string }> {
    let current = url;
    let method = options.method ?? 'GET';
    let body: string | undefined = options.form?.toString();
    for (let i = 0; i < 20; i++) {
      const target = new URL(current);
      const headers: Record<string, string> = {};
      const cookie = this.cookieHeader(target);
      if (cookie) headers.cookie = cookie;
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const response = await fetch(target, { method, headers, body, redirect: 'manual' });
      for (const line of response.headers.getSetCookie()) this.store(target, line);
      const location = response.headers.get('location') ?? undefined;
      this.hops.push({ method, url: current, status: response.status, ...(location ? { location } : {}) });
      if (response.status >= 300 && response.status < 400 && location) {
        await response.text();
        const next = new URL(location, target).href;
        if (options.stopAt?.(next)) return { stoppedAt: next };
        current = next;
        method = 'GET';
        body = undefined;
        continue;
      }
      return { url: current, status: response.status, html: await response.text() };
    }
    throw new Error('too many redirects');
  }

  /** Submits the page's first form with its hidden fields plus `fields`. */
  async submit(page: Page, fields: Record<string, string>, options: { stopAt?: (location: string) => boolean } = {}): Promise<Page | { stoppedAt: string }> {
    const form = /<form method="(get|post)" action="([^"]*)">([\s\S]*?)<\/form>/i.exec(page.html);
    if (!form) throw new Error(`no form on ${page.url}: ${page.html.slice(0, 200)}`);
    const params = new URLSearchParams();
    for (const input of form[3]!.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) params.append(unescape(input[1]!), unescape(input[2]!));
    for (const [name, value] of Object.entries(fields)) params.set(name, value);
    const action = new URL(unescape(form[2]!), page.url);
    if (form[1]!.toLowerCase() === 'get') {
      action.search = params.toString();
      return this.navigate(action.href, options);
    }
    return this.navigate(action.href, { ...options, method: 'POST', form: params });
  }

  cookieNames(): string[] {
    return this.cookies.map((c) => c.name);
  }

  private cookieHeader(url: URL): string {
    return this.cookies
      .filter((c) => c.host === url.hostname && (url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  private store(url: URL, line: string): void {
    const [pair, ...attributes] = line.split(';').map((part) => part.trim());
    const eq = pair!.indexOf('=');
    const name = pair!.slice(0, eq);
    const value = pair!.slice(eq + 1);
    let path = '/';
    let expired = false;
    for (const attribute of attributes) {
      const [key, val = ''] = attribute.split('=');
      if (key!.toLowerCase() === 'path') path = val;
      if (key!.toLowerCase() === 'max-age' && Number(val) <= 0) expired = true;
      if (key!.toLowerCase() === 'expires' && Date.parse(val) < Date.now()) expired = true;
    }
    this.cookies = this.cookies.filter((c) => !(c.name === name && c.host === url.hostname && c.path === path));
    if (!expired) this.cookies.push({ name, value, host: url.hostname, path });
  }
}

function unescape(text: string): string {
  return text.replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code))).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
