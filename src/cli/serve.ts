import { createLocalSecretStore } from '../../adapters/local';
import { isAbsolute } from 'node:path';
import { createBroker } from '../app';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { DEMO_FILE, DEMO_SERVER, demoPolicy, loadOrCreateDemoCredentials, type DemoCredentials } from '../policy/demo';
import { DEFAULT_SOCKET_MODE } from '../net/unix-listener';
import { loadPolicyFile } from '../policy/load';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { UsageError } from './usage-error';

export const SERVE_HELP = `Usage: bulkhead serve [--config FILE] [--data-dir DIR] [--host 127.0.0.1] [--port 8700]
                      [--listen unix:/run/bulkhead/broker.sock|HOST:PORT ...] [--listen-mode 0600]

Runs the broker. With no --config it starts on a demo policy (tenants acme and globex on MCP server
"${DEMO_SERVER}", local secrets) and prints how to get a token.

  --config FILE     policy file (YAML or JSON)
  --data-dir DIR    state: keys, revocations, audit, local secrets (default ./.bulkhead, or $BULKHEAD_DATA_DIR)
  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on (default 8700; 0 picks a free one)
  --listen ADDR     where to listen, repeatable: unix:/abs/path for a unix socket (a sidecar's MCP server
                    connects with broker URL unix:/abs/path), or HOST:PORT ([::1]:8700 for IPv6). With
                    --listen and no --host/--port, only the --listen addresses are served; otherwise TCP
                    --host:--port is served too. A socket path that exists is refused unless it is a
                    stale socket (nobody listening), which is replaced; the socket is removed at shutdown.
                    Every route is served on the socket and authenticates as over TCP (plain HTTP there,
                    even with broker.tls on: its file mode guards it).
  --listen-mode MODE  octal permissions of unix sockets (default 0600: the broker's user only; 0660 lets
                    the socket's group connect)

Signals: SIGINT/SIGTERM stop; SIGHUP reloads --config (validated whole first; a bad file is logged and
the old policy keeps serving; settings under \`broker\` change only at a restart).

Environment: BULKHEAD_MASTER_KEY (base64, 32 bytes) instead of DATA_DIR/master.key; BULKHEAD_LOG_LEVEL.`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseVerb('serve', argv, { ...stateOptions, host: { type: 'string' }, port: { type: 'string' }, listen: { type: 'string', multiple: true }, 'listen-mode': { type: 'string' } });
  if (values.help) {
    process.stdout.write(SERVE_HELP + '\n');
    return 0;
  }
  const listeners = listenersOf(values as { host?: string; port?: string; listen?: string | string[] });
  const socketMode = modeOf(values['listen-mode']);
  const loaded = loadConfig(values);
  const dataDir = loaded.dataDir;

  let demo: DemoCredentials | null = null;
  let policy = loaded.policy;
  if (!policy) {
    demo = await loadOrCreateDemoCredentials(dataDir);
    const first = listeners.find((l) => l.kind === 'tcp');
    policy = demoPolicy(demo, first?.kind === 'tcp' ? `http://${hostInUrl(first.host)}:${first.port}` : 'http://localhost');
    await seedDemoSecrets(dataDir, demo);
  }

  const file = values.config;
  const broker = await createBroker({ policy, dataDir, loadPolicy: file ? () => loadPolicyFile(file) : undefined, releaseHeap: true });
  const urls: string[] = [];
  try {
    for (const listener of listeners) urls.push((listener.kind === 'tcp' ? await broker.listen(listener.port, listener.host) : await broker.listenSocket(listener.path, socketMode)).url);
  } catch (err) {
    // A refused socket path or a port in use: nothing half-started stays behind.
    await broker.close();
    throw err;
  }
  broker.logger.info({ url: urls[0], urls, dataDir, state: broker.state.kind, demo: demo !== null }, 'bulkhead listening');
  if (demo) process.stderr.write(demoBanner(urls[0], dataDir));

  // SIGHUP reloads the policy file; a bad one is logged and the old policy keeps serving.
  const onHangup = () => void broker.reloadPolicy('(SIGHUP)').catch(() => undefined);
  process.on('SIGHUP', onHangup);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  process.off('SIGHUP', onHangup);
  broker.logger.info('shutting down');
  await broker.close();
  return 0;
}

type Listener = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** --listen addresses, plus TCP --host:--port unless only --listen was given. */
function listenersOf(values: { host?: string; port?: string; listen?: string | string[] }): Listener[] {
  const given = values.listen === undefined ? [] : Array.isArray(values.listen) ? values.listen : [values.listen];
  const listeners: Listener[] = given.map(parseListen);
  if (given.length === 0 || values.host !== undefined || values.port !== undefined) {
    listeners.unshift({ kind: 'tcp', host: values.host ?? '127.0.0.1', port: portOf(values.port ?? '8700', '--port') });
  }
  return listeners;
}

function parseListen(text: string): Listener {
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!isAbsolute(path)) throw new UsageError(`bulkhead serve: --listen ${text}: the socket path must be absolute (unix:/run/bulkhead/broker.sock)`);
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d+)$/.exec(text);
  if (!match) throw new UsageError(`bulkhead serve: --listen must be unix:/abs/path or HOST:PORT, got "${text}"`);
  return { kind: 'tcp', host: match[1] ?? match[2], port: portOf(match[3], '--listen') };
}

function portOf(text: string, flag: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`bulkhead serve: ${flag} must be a port number, got "${text}"`);
  return port;
}

function modeOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_SOCKET_MODE;
  if (!/^0?[0-7]{3}$/.test(text)) throw new UsageError(`bulkhead serve: --listen-mode must be octal permissions such as 0600 or 0660, got "${text}"`);
  return parseInt(text, 8);
}

const hostInUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

async function seedDemoSecrets(dataDir: string, demo: DemoCredentials): Promise<void> {
  const store = createLocalSecretStore({ dataDir, masterKey: await loadOrCreateMasterKey(dataDir) });
  for (const [tenant, secrets] of Object.entries(demo.secrets)) {
    const existing = new Set(await store.list(tenant));
    for (const [name, value] of Object.entries(secrets)) if (!existing.has(name)) await store.set(tenant, name, value);
  }
}

function demoBanner(url: string, dataDir: string): string {
  return `
Bulkhead is running on the demo policy at ${url}
  tenants: acme, globex   MCP server: ${DEMO_SERVER}   tools: query_crm, export_report, send_email
  demo client secrets, server key and operator token: ${dataDir}/${DEMO_FILE} (mode 0600)

Get a token for acme's agent (bulkhead = node dist/src/cli/main.js, or \`npm link\` once):
  bulkhead token --client-id acme-agent --audience ${DEMO_SERVER} --data-dir ${dataDir} --url ${url}
See README.md for the full walkthrough (authorize, cross-tenant deny, revoke, audit verify).

`;
}
