import { resolve } from 'node:path';
import { callBroker, readSecret } from './http-client';
import { clientOptions, DEFAULT_DATA_DIR, parseVerb } from './options';
import { UsageError } from './usage-error';

export const TOKEN_HELP = `Usage: bulkhead token --client-id ID --audience SERVER [--scope "tool tool"] [--secret-file FILE] [--url URL] [--json]

Gets an access token for a principal from a running broker (client_credentials grant) and prints it.

  --client-id ID     the principal ("acme-agent", or "acme/acme-agent" if several tenants use the name)
  --audience SERVER  the MCP server id the token is for
  --scope TOOLS      space-separated tools to narrow the token to (never widens)
  --secret-file F    file holding the client secret (else $BULKHEAD_CLIENT_SECRET, else the demo
                     credentials in --data-dir)
  --url URL          broker URL, or unix:/path of its socket (default $BULKHEAD_ADDR, else http://127.0.0.1:8700)
  --json             print the whole token response instead of the bare token`;

export async function token(argv: string[]): Promise<number> {
  const { values } = parseVerb('token', argv, {
    ...clientOptions,
    'client-id': { type: 'string' },
    audience: { type: 'string' },
    scope: { type: 'string' },
    'secret-file': { type: 'string' },
    json: { type: 'boolean' },
  });
  if (values.help) {
    process.stdout.write(TOKEN_HELP + '\n');
    return 0;
  }
  const clientId = values['client-id'];
  if (!clientId || !values.audience) throw new UsageError('bulkhead token: --client-id and --audience are required (see bulkhead token --help)');
  const dataDir = resolve(values['data-dir'] ?? process.env.BULKHEAD_DATA_DIR ?? DEFAULT_DATA_DIR);
  const secret = readSecret({
    file: values['secret-file'],
    envName: 'BULKHEAD_CLIENT_SECRET',
    demo: (d) => d.clients[clientId.split('/').pop()!]?.secret,
    dataDir,
    what: `client secret for "${clientId}"`,
  });
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, audience: values.audience });
  if (values.scope) form.set('scope', values.scope);
  const answer = (await callBroker(values.url, '/v1/token', { method: 'POST', form })) as { access_token: string };
  process.stdout.write((values.json ? JSON.stringify(answer, null, 2) : answer.access_token) + '\n');
  return 0;
}
