/**
 * Raw HTTP for contract tests: the exact bytes, content type and headers we choose, and the exact text
 * that came back (the harness helpers JSON-encode for us, which is what these tests must not do).
 */
export interface RawAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The parsed body, or undefined when it is not JSON. */
  json: any;
}

export interface RawRequest {
  /** A string is sent as is; anything else is JSON-encoded. */
  body?: unknown;
  contentType?: string;
  bearer?: string;
  headers?: Record<string, string>;
}

export async function raw(baseUrl: string, method: string, path: string, request: RawRequest = {}): Promise<RawAnswer> {
  const headers: Record<string, string> = { ...(request.headers ?? {}) };
  if (request.bearer) headers.authorization = `Bearer ${request.bearer}`;
  let body: string | undefined;
  if (request.body !== undefined) {
    body = typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
    headers['content-type'] = request.contentType ?? 'application/json';
  } else if (request.contentType) {
    headers['content-type'] = request.contentType;
  }
  const response = await fetch(baseUrl + path, { method, headers, body });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A stack frame ("    at fn (file:1:2)") or a source location anywhere in a body. */
const STACK_LINE = /(^|\n|\\n)\s*at \S/;
const FILE_PATH = /(\/(work|home|tmp|usr|var|root|opt)\/)|node_modules|\.[cm]?[jt]s:\d+|[A-Za-z]:\\\\/;

/**
 * What every error answer must be: JSON (never an HTML page), with no stack trace, no file path and none
 * of the run's secrets in it.
 */
export function expectCleanJson(answer: RawAnswer, secrets: string[] = []): void {
  expect(answer.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  expect(answer.json).toEqual(expect.any(Object));
  expect(answer.text).not.toMatch(/<html|<!doctype|<pre>|<body/i);
  expect(answer.text).not.toMatch(STACK_LINE);
  expect(answer.text).not.toMatch(FILE_PATH);
  for (const secret of secrets) expect(answer.text).not.toContain(secret);
}

/** Splits a compact JWS without verifying it (the tests verify against the JWKS separately). */
export function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header, payload] = token.split('.');
  const decode = (part: string | undefined) => JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: decode(header), payload: decode(payload) };
}
