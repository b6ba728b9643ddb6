import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Starts `oidc-idp-process.mjs` (a real oidc-provider) in its own Node process and waits for its endpoints.
 * One per tenant: each tenant's users exist only at its own IdP.
 */

export interface TestIdp {
  issuer: string;
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
  close(): Promise<void>;
}

export interface TestIdpConfig {
  name: string;
  users: string[];
  client: { client_id: string; client_secret: string; redirect_uris: string[] };
}

export async function startTestIdp(config: TestIdpConfig): Promise<TestIdp> {
  const child: ChildProcess = spawn(process.execPath, [join(__dirname, 'oidc-idp-process.mjs'), JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`test IdP exited (${code}) before it was ready: ${stderr}`)));
  });
  const endpoints = JSON.parse(line) as Omit<TestIdp, 'close'>;
  return {
    ...endpoints,
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
