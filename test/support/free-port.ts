import { createServer } from 'node:net';

/**
 * A port that was free a moment ago, for a server whose URL must be known before it starts (a broker
 * whose issuer URL names its own port, an IdP that must know the broker's callback URL).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
