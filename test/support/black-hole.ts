import { createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP server that accepts connections and never answers: the shape of a hung upstream behind a load
 * balancer. Registers its own beforeAll/afterAll in the calling describe block; `url` is valid inside tests.
 */
export function blackHoleServer(): { readonly url: string } {
  let server: Server;
  const sockets: Socket[] = [];
  const hole = { url: '' };
  beforeAll(async () => {
    server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    hole.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    sockets.forEach((socket) => socket.destroy());
    await new Promise((resolve) => server.close(resolve));
  });
  return hole;
}
