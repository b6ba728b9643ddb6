// A real OpenID Provider (panva/oidc-provider) acting as one tenant's IdP in tests. Runs as its own
// process (oidc-provider is ESM-only and has its own jose), listens on 127.0.0.1, and prints one JSON
// line with its issuer and endpoints. Configuration comes as one JSON argument:
//   { users: ["alice@acme.example"], client: { client_id, client_secret, redirect_uris } }
// Login is a plain HTML form (field `login`) a scripted browser fills in; consent is granted at once.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('hex'), alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{ ...config.client, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'ES256' }],
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  findAccount: (_ctx, id) => (config.users.includes(id) ? { accountId: id, claims: () => ({ sub: id, email: id }) } : undefined),
  claims: { openid: ['sub'], email: ['email'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, Interaction: 600, Session: 600, Grant: 600 },
});
provider.on('server_error', (_ctx, err) => process.stderr.write(`idp server_error: ${err.stack}\n`));

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const loginForm = (uid, error) =>
  `<!doctype html><html><body><h1>Sign in to ${escape(config.name ?? issuer)}</h1>${error ? `<p role="alert">${escape(error)}</p>` : ''}<form method="post" action="/interaction/${escape(uid)}"><input name="login"><button>Sign in</button></form></body></html>`;

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)$/.exec(req.url.split('?')[0]);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (details.prompt.name === 'consent') {
      const grant = new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      grant.addOIDCScope(String(details.params.scope));
      const grantId = await grant.save();
      return await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    if (req.method === 'GET') {
      res.setHeader('content-type', 'text/html');
      return res.end(loginForm(match[1]));
    }
    const login = (await readForm(req)).get('login') ?? '';
    if (!config.users.includes(login)) {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html');
      return res.end(loginForm(match[1], 'unknown user'));
    }
    await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  } catch (err) {
    process.stderr.write(`idp interaction failed: ${err.stack}\n`);
    res.statusCode = 500;
    res.end('interaction failed');
  }
});

process.stdout.write(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }) + '\n');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
