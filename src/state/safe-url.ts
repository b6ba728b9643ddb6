/**
 * Where a postgres:// or redis:// URL points (scheme, host, port, database), for messages and logs.
 * Such URLs may carry a password; this never includes the user or password part.
 */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    const port = parsed.port ? `:${parsed.port}` : '';
    const path = parsed.pathname && parsed.pathname !== '/' ? parsed.pathname : '';
    return `${parsed.protocol}//${parsed.hostname}${port}${path}`;
  } catch {
    return '(unparsable URL)';
  }
}
