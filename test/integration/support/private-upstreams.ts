import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UPSTREAMS_SCRIPT } from '../../support/upstreams';

/**
 * A private OpenBao and/or moto for tests that stop and start them: `scripts/upstreams.sh` run with
 * its own state dir and free ports (BULKHEAD_UPSTREAMS_DIR, BULKHEAD_BAO_PORT, BULKHEAD_MOTO_PORT),
 * reusing the cached binaries. Stopping the shared instances instead would break every other suite
 * running at the same time.
 */
export type PrivateService = 'bao' | 'moto';

export interface PrivateUpstreams {
  vaultAddr: string;
  awsEndpoint: string;
  stop(service: PrivateService): Promise<void>;
  start(service: PrivateService): Promise<void>;
  close(): Promise<void>;
}

const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function isFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** OpenBao's dev server also listens on port+1 (cluster), so both must be free. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    if (port < 65535 && (await isFree(port + 1))) return port;
  }
  throw new Error('no two adjacent free ports found');
}

export async function startPrivateUpstreams(services: PrivateService[]): Promise<PrivateUpstreams> {
  const dir = await mkdtemp(join(tmpdir(), 'bulkhead-private-upstreams-'));
  const baoPort = await freePortPair();
  const motoPort = await freePort();
  const env = { ...process.env, BULKHEAD_UPSTREAMS_DIR: dir, BULKHEAD_BAO_PORT: String(baoPort), BULKHEAD_MOTO_PORT: String(motoPort) };
  const script = (verb: string, names: PrivateService[]) => run('bash', [UPSTREAMS_SCRIPT, verb, ...names], { env, timeout: 120_000 });
  await script('up', services);
  return {
    vaultAddr: `http://127.0.0.1:${baoPort}`,
    awsEndpoint: `http://127.0.0.1:${motoPort}`,
    stop: async (service) => void (await script('down', [service])),
    start: async (service) => void (await script('up', [service])),
    async close() {
      await script('down', services).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
