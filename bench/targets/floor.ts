import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { serveTarget } from '../target-process';

/**
 * The floor: the cheapest JSON endpoint each stack can offer, doing what any JSON API must (read and
 * parse the body, serialise an answer of the same size as the broker's allow) and nothing else.
 * `express` is express 5 with its JSON parser, like the broker; `http` is bare node:http.
 */
export interface FloorConfig {
  kind: 'express' | 'http';
  /** Length of the JSON answer, matched to the broker's allow response. */
  responseBytes: number;
}

function answerOfSize(bytes: number): Record<string, unknown> {
  const base = { decision: 'allow', pad: '' };
  const padding = Math.max(0, bytes - JSON.stringify(base).length);
  return { decision: 'allow', pad: 'x'.repeat(padding) };
}

function expressFloor(answer: Record<string, unknown>): Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(express.json({ limit: '64kb' }));
  app.post('/floor', (req, res) => {
    // Touch the body so the parse cannot be skipped as dead work.
    if (typeof req.body !== 'object') res.status(400);
    res.json(answer);
  });
  return createServer(app);
}

function httpFloor(answer: Record<string, unknown>): Server {
  return createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let status = 200;
      try {
        if (typeof JSON.parse(Buffer.concat(chunks).toString('utf8')) !== 'object') status = 400;
      } catch {
        status = 400;
      }
      const body = JSON.stringify(answer);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

serveTarget(async (config: FloorConfig) => {
  const answer = answerOfSize(config.responseBytes);
  const server = config.kind === 'express' ? expressFloor(answer) : httpFloor(answer);
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    info: { url: `http://127.0.0.1:${port}`, path: '/floor' },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
});
