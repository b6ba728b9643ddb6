import { createLocalSecretStore } from '../../adapters/local';
import { createBroker } from '../app';
import { loadOrCreateMasterKey } from '../crypto/master-key';
import { DEMO_FILE, DEMO_SERVER, demoPolicy, loadOrCreateDemoCredentials, type DemoCredentials } from '../policy/demo';
import { loadPolicyFile } from '../policy/load';
import { loadConfig } from './load-config';
import { parseVerb, stateOptions } from './options';
import { UsageError } from './usage-error';

export const SERVE_HELP = `Usage: bulkhead serve [--config FILE] [--data-dir DIR] [--host 127.0.0.1] [--port 8700]

Runs the broker. With no --config it starts on a demo policy (tenants acme and globex on MCP server
"${DEMO_SERVER}", local secrets) and prints how to get a token.

  --config FILE     policy file (YAML or JSON)
  --data-dir DIR    state: keys, revocations, audit, local secrets (default ./.bulkhead, or $BULKHEAD_DATA_DIR)
  --host HOST       address to listen on (default 127.0.0.1)
  --port PORT       port to listen on (default 8700; 0 picks a free one)

Signals: SIGINT/SIGTERM stop; SIGHUP reloads --config (validated whole first; a bad file is logged and
the old policy keeps serving; settings under \`broker\` change only at a restart).

Environment: BULKHEAD_MASTER_KEY (base64, 32 bytes) instead of DATA_DIR/master.key; BULKHEAD_LOG_LEVEL.`;

export async function serve(argv: string[]): Promise<number> {
  const { values } = parseVerb('serve', argv, { ...stateOptions, host: { type: 'string' }, port: { type: 'string' } });
  if (values.help) {
    process.stdout.write(SERVE_HELP + '\n');
    return 0;
  }
  const host = values.host ?? '127.0.0.1';
  const port = Number(values.port ?? 8700);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bulkhead serve: --port must be a port number, got "${values.port}"`);
  const loaded = loadConfig(values);
  const dataDir = loaded.dataDir;

  let demo: DemoCredentials | null = null;
  let policy = loaded.policy;
  if (!policy) {
    demo = await loadOrCreateDemoCredentials(dataDir);
    policy = demoPolicy(demo, `http://${host}:${port}`);
    await seedDemoSecrets(dataDir, demo);
  }

  const file = values.config;
  const broker = await createBroker({ policy, dataDir, loadPolicy: file ? () => loadPolicyFile(file) : undefined });
  const { url } = await broker.listen(port, host);
  broker.logger.info({ url, dataDir, state: broker.state.kind, demo: demo !== null }, 'bulkhead listening');
  if (demo) process.stderr.write(demoBanner(url, dataDir));

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
