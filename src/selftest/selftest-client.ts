/**
 * The HTTP client `bulkhead selftest` attacks a deployment with: plain fetch, as a third-party MCP
 * server or agent would call the API, and every answer kept so the leak scan can search all of them.
 */
export interface Answer {
  status: number;
  body: any;
  text: string;
}

export interface Exchange {
  replica: string;
  path: string;
  status: number;
  text: string;
}

export interface SelftestClient {
  request(replica: string, method: 'GET' | 'POST', path: string, options?: { json?: unknown; form?: Record<string, string>; bearer?: string }): Promise<Answer>;
  /** Every answer so far, in order. */
  exchanges: Exchange[];
}

export function createSelftestClient(timeoutMs = 10_000): SelftestClient {
  const exchanges: Exchange[] = [];
  return {
    exchanges,
    async request(replica, method, path, options = {}) {
      const headers: Record<string, string> = {};
      if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
      let body: string | undefined;
      if (options.form) {
        headers['content-type'] = 'application/x-www-form-urlencoded';
        body = new URLSearchParams(options.form).toString();
      } else if (options.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(options.json);
      }
      let response: Response;
      try {
        response = await fetch(new URL(path, replica), { method, headers, body, signal: AbortSignal.timeout(timeoutMs) });
      } catch (err) {
        throw new Error(`cannot reach ${replica} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message})`);
      }
      const text = await response.text();
      exchanges.push({ replica, path, status: response.status, text });
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Left as text (/metrics); a check that expects JSON will say what it got.
      }
      return { status: response.status, body: parsed, text };
    },
  };
}
