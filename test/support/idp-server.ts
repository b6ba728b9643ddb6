import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload, type KeyLike } from 'jose';

/**
 * Real tenant identity providers on 127.0.0.1, each one JWKS path on one HTTP server, switchable
 * between a good IdP and the hostile or broken shapes an IdP can take. The server counts the requests
 * each IdP received and how many bytes it managed to send before the client went away, so a test can
 * prove "one fetch in flight" and "the broker stopped reading".
 */
export type IdpMode =
  | 'good'
  /** Headers at once, then one byte every 100 ms, forever. */
  | 'trickle'
  /** Accepts the request and never answers. */
  | 'slow-headers'
  /** 100 MB of JSON-looking bytes, chunked (no Content-Length). */
  | 'huge'
  /** The same, announced with its Content-Length. */
  | 'huge-declared'
  | 'invalid-json'
  /** Valid JSON that is not a JWKS. */
  | 'not-jwks'
  | 'status-500';

export interface Idp {
  issuer: string;
  jwksUri: string;
  mode: IdpMode;
  /** Requests this IdP received. */
  requests: number;
  /** Bytes written to responses that ended early (the client closed the connection). */
  abandonedBytes: number[];
  /** A JWT from this IdP: `iss` its issuer, `aud` "bulkhead", `sub` "alice", 5 minutes, unless `claims` say otherwise; `typ` in the header when given. */
  sign(claims: JWTPayload, nowSeconds: number, header?: { typ?: string }): Promise<string>;
}

const HUGE = 100 * 1024 * 1024;

export async function startIdps(names: string[]): Promise<{ idps: Record<string, Idp>; close(): Promise<void> }> {
  const idps: Record<string, Idp> = {};
  const keys: Record<string, { privateKey: KeyLike; jwk: JWK }> = {};
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => {
    const name = /^\/([^/]+)\/jwks$/.exec(req.url ?? '')?.[1];
    const idp = name ? idps[name] : undefined;
    if (!idp) return void res.writeHead(404).end();
    idp.requests++;
    serve(idp, keys[name!]!.jwk, res);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  function serve(idp: Idp, jwk: JWK, res: ServerResponse): void {
    switch (idp.mode) {
      case 'good':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
      case 'slow-headers':
        return;
      case 'trickle': {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"keys":[');
        const timer = setInterval(() => res.write(' '), 100);
        timers.add(timer);
        res.on('close', () => clearInterval(timer));
        return;
      }
      case 'huge':
      case 'huge-declared':
        return pump(idp, res, idp.mode === 'huge-declared');
      case 'invalid-json':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [ {"kty": "RSA", ');
      case 'not-jwks':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: 'all of them' }));
      case 'status-500':
        return void res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
    }
  }

  /** Writes as fast as the client reads, until 100 MB are out or the client hangs up. */
  function pump(idp: Idp, res: ServerResponse, declared: boolean): void {
    res.writeHead(200, { 'content-type': 'application/json', ...(declared ? { 'content-length': String(HUGE) } : {}) });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    let closed = false;
    res.on('close', () => {
      closed = true;
      if (sent < HUGE) idp.abandonedBytes.push(sent);
    });
    const more = () => {
      while (!closed && sent < HUGE) {
        sent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      if (!closed) res.end();
    };
    more();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  for (const name of names) {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const kid = `${name}-1`;
    keys[name] = { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
    const issuer = `https://idp.${name}.example`;
    idps[name] = {
      issuer,
      jwksUri: `${base}/${name}/jwks`,
      mode: 'good',
      requests: 0,
      abandonedBytes: [],
      sign: (claims, now, header = {}) =>
        new SignJWT({ iss: issuer, aud: 'bulkhead', sub: 'alice', iat: now, exp: now + 300, ...claims }).setProtectedHeader({ alg: 'ES256', kid, ...header }).sign(privateKey),
    };
  }

  return {
    idps,
    async close() {
      timers.forEach((t) => clearInterval(t));
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
