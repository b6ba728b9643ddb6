import { z } from 'zod';
import { foldKey } from '../authorize/fold-key';
import { isTenantKeyFolded } from '../authorize/tenant-keys';
import { parseDuration } from './duration';
import { parseSize } from './size';
import { recordValidatedOnce, validatedOnce } from './validate-once';

/**
 * The one schema for the policy file. Every object is strict (unknown keys are errors), secrets appear
 * only as SHA-256 hex digests, durations become milliseconds, and cross-references (a tool naming a
 * credential, a principal naming a tool) are checked in `checkReferences` so errors name the path.
 */

/**
 * Enough for an agent's honest mistakes to be recorded one by one, few enough that a tenant hammering
 * denied calls writes at most ~430k records a day into the disk every tenant's audit shares.
 */
export const DEFAULT_AUDITED_DENIES_PER_MINUTE = 300;

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const idSchema = z.string().regex(ID, 'must be 1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit');
/** `idSchema` as a plain test, for the paths that check an id on every call. */
export const isPolicyId = (value: unknown): value is string => typeof value === 'string' && ID.test(value);
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase SHA-256 hex digest (64 characters)');
const duration = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: 'must be a positive duration such as "90s", "15m", "24h"' });
      return z.NEVER;
    }
    return ms;
  });
/** Like `duration`, but zero is allowed (a tolerance of none). */
const tolerance = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration such as "0s", "5s", "30s"' });
      return z.NEVER;
    }
    return ms;
  });
const size = z.string().regex(/^\d+(b|kb|mb)$/i, 'must be a size such as "64kb" or "1mb"');
const url = z.string().url();
// Tool-name lists, tool settings and quota settings repeat across tenants: validated once per load (validate-once.ts).
const toolList = validatedOnce(z.array(idSchema));

const vaultAuth = z
  .object({
    approle: z.object({ role_id_file: z.string().min(1), secret_id_file: z.string().min(1), mount: z.string().default('approle') }).strict().optional(),
    token_file: z.string().min(1).optional(),
  })
  .strict();

const upstreams = z
  .object({
    vault: z
      .object({
        address: url,
        namespace: z.string().optional(),
        auth: vaultAuth.optional(),
        timeout: duration.prefault('5s'),
      })
      .strict()
      .optional(),
    aws: z
      .object({
        region: z.string().min(1),
        endpoint: url.optional(),
        timeout: duration.prefault('5s'),
      })
      .strict()
      .optional(),
    // Tenant IdPs' JWKS documents: each fetch is bounded as a whole (deadline) and by size.
    idp: z
      .object({ timeout: duration.prefault('5s'), body_limit: size.default('1mb').transform((value) => parseSize(value)!) })
      .strict()
      .prefault({}),
  })
  .strict();

/** The browser-facing authorization code flow (`/authorize`), federated to each tenant's IdP. */
const authorization = z
  .object({
    // An authorization code is redeemed at once by the client that asked for it: a minute is plenty.
    code_ttl: duration.prefault('60s'),
    // From /authorize to the IdP's callback: the person logs in in between.
    login_ttl: duration.prefault('10m'),
    // Client ID Metadata Documents: a client_id that is an https URL names its own registration.
    client_metadata: z
      .object({
        enabled: z.boolean().default(true),
        timeout: duration.prefault('5s'),
        max_bytes: z.number().int().positive().max(65_536).default(5120),
        // Fetches of documents not in the cache, across all clients: a flood of made-up URLs costs this much.
        fetches_per_minute: z.number().int().positive().default(60),
        cache: duration.prefault('5m'),
        // Tests and local development only: http://127.0.0.1 / [::1] / localhost document URLs.
        allow_http_loopback: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict();

const broker = z
  .object({
    issuer: url.default('http://127.0.0.1:8700'),
    token_ttl: duration.prefault('15m'),
    max_token_ttl: duration.prefault('60m'),
    // Leeway for tenant IdP tokens (other clocks); the broker's own tokens get token_clock_skew.
    clock_skew: duration.prefault('30s'),
    token_clock_skew: tolerance.prefault('5s'),
    // No token of a session expires later than the session's start (auth_time) plus this.
    session_max_lifetime: duration.prefault('8h'),
    rotation: z.object({ signing_key: duration.prefault('24h'), certificate: duration.prefault('24h'), audit_key: duration.prefault('30d') }).strict().prefault({}),
    // Signed checkpoints of each tenant's audit head (src/audit/checkpointer.ts).
    audit: z
      .object({
        checkpoint_every: z.number().int().min(1).max(1_000_000).default(1000),
        checkpoint_interval: duration.prefault('60s'),
        // The security stream's audited-deny budget (refusals with no verifiable tenant), like a tenant's quotas.audited_denies_per_minute.
        security_denies_per_minute: z.number().int().min(1).max(1_000_000).default(DEFAULT_AUDITED_DENIES_PER_MINUTE),
      })
      .strict()
      .prefault({}),
    tls: z.object({ mode: z.enum(['off', 'internal-ca', 'vault-pki']).default('off'), vault_pki_mount: z.string().optional(), vault_pki_role: z.string().optional() }).strict().prefault({}),
    state: z
      .object({
        redis_url: z.string().url().optional(),
        postgres_url: z.string().url().optional(),
        // Namespace for Bulkhead's Redis keys and channels, so several deployments can share one Redis.
        redis_prefix: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-"').default('bulkhead'),
      })
      .strict()
      .prefault({}),
    upstreams: upstreams.prefault({}),
    // How long an unwrapped tenant data key is reused before its root (master key, transit, KMS) is asked again.
    data_key_cache: duration.prefault('60s'),
    body_limit: size.default('64kb'),
    authorization: authorization.prefault({}),
  })
  .strict();

// Calls per minute through one credential for the tenant: protects an upstream key several tools share.
const perCredentialRate = z.number().int().positive().optional();
const credential = z.discriminatedUnion('source', [
  z.object({ source: z.literal('local'), name: idSchema, cache_ttl: duration.optional(), calls_per_minute: perCredentialRate }).strict(),
  z.object({ source: z.literal('vault'), path: z.string().min(1), field: z.string().optional(), cache_ttl: duration.optional(), calls_per_minute: perCredentialRate }).strict(),
  z.object({ source: z.literal('vault-database'), role: z.string().min(1), mount: z.string().default('database'), calls_per_minute: perCredentialRate }).strict(),
  z
    .object({
      source: z.literal('aws'),
      secret_id: z.string().min(1),
      version_stage: z.string().default('AWSCURRENT'),
      field: z.string().optional(),
      role_arn: z.string().optional(),
      cache_ttl: duration.optional(),
      calls_per_minute: perCredentialRate,
    })
    .strict(),
]);

const budgets = z
  .object({ hourly: z.number().positive().finite().optional(), daily: z.number().positive().finite().optional() })
  .strict()
  .refine((b) => b.hourly !== undefined || b.daily !== undefined, 'must set hourly, daily or both');

const toolSettings = z
  .object({
    credential: idSchema,
    resource: z.object({ arg: z.string().min(1), prefix: z.string().min(1) }).strict().optional(),
    inject: z.record(z.string(), z.unknown()).optional(),
    approval: z.boolean().default(false),
    max_records: z.number().int().positive().optional(),
    // The service the tool's credential opens: each allow then carries a signed call context for it (docs/mcp.md).
    downstream: z.object({ audience: z.string().min(1).max(2048) }).strict().optional(),
    // Cost units charged per call against the tenant's (and principal's) budgets; usage reported on /v1/complete corrects it.
    cost: z.number().nonnegative().finite().default(0),
  })
  .strict();

/**
 * A principal authenticates with a client secret (client_credentials), or as a workload whose identity
 * token a trusted issuer signed (RFC 7523 jwt-bearer: a Kubernetes service-account token, a SPIFFE
 * JWT-SVID), or both. The mapping is policy's: (issuer, exact subject) → this tenant and principal.
 */
const principal = z
  .object({
    secret_sha256: sha256Hex.optional(),
    workload: z.object({ issuer: idSchema, subject: z.string().min(1).max(2048) }).strict().optional(),
    tools: toolList,
    budgets: budgets.optional(),
  })
  .strict()
  .refine((p) => p.secret_sha256 !== undefined || p.workload !== undefined, { message: 'needs secret_sha256 or workload (or both)' });

/** An issuer of workload identity tokens the broker trusts for the jwt-bearer grant. */
const workloadIssuer = z
  .object({
    issuer: z.string().min(1).max(2048),
    jwks_uri: url,
    // The `aud` its tokens must carry for this broker (a projected service-account token's audience, the JWT-SVID audience).
    audience: z.string().min(1).max(2048),
    // Checks the subject's form in policy: a SPIFFE ID, a Kubernetes service account, or any string.
    kind: z.enum(['jwt', 'spiffe', 'kubernetes']).default('jwt'),
    // An assertion valid for longer than this from now is refused (a non-expiring token never works).
    max_lifetime: duration.prefault('24h'),
  })
  .strict();

const quotaSettings = z
  .object({
    calls_per_minute: z.number().int().positive().default(600),
    concurrency: z.number().int().positive().default(8),
    // Denies written to the audit stream one by one per minute; past it they are summarised (deny-budget.ts).
    audited_denies_per_minute: z.number().int().positive().default(DEFAULT_AUDITED_DENIES_PER_MINUTE),
  })
  .strict();

const tenant = z
  .object({
    // A canary tenant exists to be attacked by `bulkhead selftest`: local canary secrets only, never real data.
    canary: z.boolean().default(false),
    principals: z.record(idSchema, principal).prefault({}),
    idp: z
      .object({
        issuer: z.string().min(1),
        jwks_uri: url,
        audience: z.string().min(1),
        principal_claim: z.string().default('sub'),
        scope: toolList.optional(),
        // Identity Assertion JWT Authorization Grants (ID-JAG, typ oauth-id-jag+jwt) from this IdP are
        // accepted on the jwt-bearer grant, presented by an authenticated client of this tenant (default: not).
        id_jag: z.boolean().optional(),
        // People of this tenant log in here for the authorization code flow (Bulkhead is an OIDC client).
        login: z
          .object({
            client_id: z.string().min(1).max(256),
            // The file holds the client secret (client_secret_basic); omitted: a public client (PKCE only).
            client_secret_file: z.string().min(1).optional(),
            authorization_endpoint: url,
            token_endpoint: url,
            scope: z.string().regex(/^openid( [\x21\x23-\x5b\x5d-\x7e]+)*$/, 'must start with "openid"').default('openid'),
            // A login_hint (email) in one of these domains picks this tenant at /authorize.
            domains: z.array(z.string().regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, 'must be a lowercase domain name')).default([]),
          })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    // One AppRole per tenant: the only Vault identity the broker uses for this tenant's credentials.
    vault: z.object({ approle: z.object({ role_id_file: z.string().min(1), secret_id_file: z.string().min(1), mount: z.string().min(1).optional() }).strict() }).strict().optional(),
    tools: recordValidatedOnce(idSchema, toolSettings).prefault({}),
    credentials: z.record(idSchema, credential).prefault({}),
    // The root that wraps this tenant's data keys (BYOK); omitted: the broker master key.
    encryption: z
      .union([
        z.object({ vault_transit: z.object({ key: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'must be a transit key name'), mount: z.string().min(1).default('transit') }).strict() }).strict(),
        z.object({ aws_kms: z.object({ key_id: z.string().min(1).max(2048) }).strict() }).strict(),
      ])
      .optional(),
    quotas: validatedOnce(quotaSettings).prefault({}),
    // Cost units per UTC hour and day for the whole tenant; a call over either is denied budget_exceeded.
    budgets: budgets.optional(),
  })
  .strict();

const policyObject = z
  .object({
    broker: broker.prefault({}),
    operators: z.record(idSchema, z.object({ token_sha256: sha256Hex }).strict()).prefault({}),
    servers: z.record(idSchema, z.object({ key_sha256: sha256Hex, tools: toolList, resource: url.optional() }).strict()).prefault({}),
    // OAuth clients registered by the operator (public clients: PKCE, exact redirect URIs). A client
    // with a tenant logs its users in at that tenant's IdP without asking which organisation they are in.
    clients: z
      .record(idSchema, z.object({ redirect_uris: z.array(url).min(1), tenant: idSchema.optional(), name: z.string().max(128).optional() }).strict())
      .prefault({}),
    tenants: z.record(idSchema, tenant).prefault({}),
    workload_issuers: z.record(idSchema, workloadIssuer).prefault({}),
  })
  .strict();

export const policySchema = policyObject.superRefine(checkReferences);

export type Policy = z.infer<typeof policySchema>;
export type TenantPolicy = Policy['tenants'][string];
export type ToolPolicy = TenantPolicy['tools'][string];
export type CredentialSpec = TenantPolicy['credentials'][string];
export type ServerPolicy = Policy['servers'][string];
export type BrokerSettings = Policy['broker'];
export type WorkloadIssuer = Policy['workload_issuers'][string];

function checkReferences(policy: z.output<typeof policyObject>, ctx: z.RefinementCtx): void {
  const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  const b = policy.broker;
  if (b.max_token_ttl > 3_600_000) issue(['broker', 'max_token_ttl'], 'must be at most 60m');
  if (b.token_ttl > b.max_token_ttl) issue(['broker', 'token_ttl'], 'must not exceed max_token_ttl');
  if (b.session_max_lifetime < b.max_token_ttl) issue(['broker', 'session_max_lifetime'], 'must be at least max_token_ttl');
  if (b.token_clock_skew > 60_000) issue(['broker', 'token_clock_skew'], 'must be at most 60s (the broker issues these tokens; its clocks agree)');
  // Scale-out needs both: revocations and audit live in PostgreSQL, their push and the counters in Redis.
  if (b.state.redis_url && !b.state.postgres_url) issue(['broker', 'state', 'postgres_url'], 'is required with redis_url (scale-out needs both)');
  if (b.state.postgres_url && !b.state.redis_url) issue(['broker', 'state', 'redis_url'], 'is required with postgres_url (scale-out needs both)');
  const issuers = new Map<string, string>();
  const domains = new Map<string, string>();
  const workloads = new Map<string, string>();
  for (const [tenantId, t] of Object.entries(policy.tenants)) {
    for (const toolName of Object.keys(t.tools)) {
      const tl = t.tools[toolName]!;
      // Object.hasOwn: these maps are plain objects, and "constructor" or "toString" are valid ids.
      if (!Object.hasOwn(t.credentials, tl.credential)) issue(['tenants', tenantId, 'tools', toolName, 'credential'], `unknown credential "${tl.credential}"`);
      if (tl.inject && Object.keys(tl.inject).some(isTenantKeyFolded)) {
        issue(['tenants', tenantId, 'tools', toolName, 'inject'], 'must not inject tenant identifiers; the tenant comes from the token');
      }
      const collision = tl.inject ? findFoldedPair([...Object.keys(tl.inject), ...(tl.resource ? [tl.resource.arg] : [])]) : null;
      if (collision) issue(['tenants', tenantId, 'tools', toolName, 'inject'], `"${collision[0]}" and "${collision[1]}" are one field to a case-insensitive reader`);
    }
    for (const [principalId, p] of Object.entries(t.principals)) {
      for (let i = 0; i < p.tools.length; i++) {
        if (!Object.hasOwn(t.tools, p.tools[i]!)) issue(['tenants', tenantId, 'principals', principalId, 'tools', i], `unknown tool "${p.tools[i]}"`);
      }
      if (p.workload) {
        const path = ['tenants', tenantId, 'principals', principalId, 'workload'];
        const source = Object.hasOwn(policy.workload_issuers, p.workload.issuer) ? policy.workload_issuers[p.workload.issuer] : undefined;
        if (!source) issue([...path, 'issuer'], `unknown workload issuer "${p.workload.issuer}" (declare it under workload_issuers)`);
        else if (!WORKLOAD_SUBJECT[source.kind].test(p.workload.subject)) issue([...path, 'subject'], WORKLOAD_SUBJECT_HINT[source.kind]);
        const key = `${p.workload.issuer}\n${p.workload.subject}`;
        const owner = workloads.get(key);
        if (owner) issue([...path, 'subject'], `this issuer's subject already belongs to principal "${owner}"`);
        workloads.set(key, `${tenantId}/${principalId}`);
      }
    }
    for (const [credName, c] of Object.entries(t.credentials)) {
      if ((c.source === 'vault' || c.source === 'vault-database') && !b.upstreams.vault) {
        issue(['tenants', tenantId, 'credentials', credName, 'source'], 'needs broker.upstreams.vault');
      }
      const sharedVaultIdentity = b.upstreams.vault?.auth?.approle ?? b.upstreams.vault?.auth?.token_file;
      if ((c.source === 'vault' || c.source === 'vault-database') && b.upstreams.vault && !t.vault && !sharedVaultIdentity) {
        issue(['tenants', tenantId, 'vault', 'approle'], `needed by credential "${credName}" (or a shared broker.upstreams.vault.auth; a tenant's own AppRole lets Vault itself refuse other tenants' paths)`);
      }
      if (c.source === 'aws' && !b.upstreams.aws) issue(['tenants', tenantId, 'credentials', credName, 'source'], 'needs broker.upstreams.aws');
    }
    if (t.encryption && 'vault_transit' in t.encryption) {
      if (!b.upstreams.vault) issue(['tenants', tenantId, 'encryption', 'vault_transit'], 'needs broker.upstreams.vault');
      else if (!t.vault && !(b.upstreams.vault.auth?.approle ?? b.upstreams.vault.auth?.token_file)) issue(['tenants', tenantId, 'vault', 'approle'], 'needed by encryption.vault_transit (the key is used with the tenant\'s own Vault identity)');
    }
    if (t.encryption && 'aws_kms' in t.encryption && !b.upstreams.aws) issue(['tenants', tenantId, 'encryption', 'aws_kms'], 'needs broker.upstreams.aws');
    if (t.canary) {
      for (const [credName, c] of Object.entries(t.credentials)) {
        if (c.source !== 'local') issue(['tenants', tenantId, 'credentials', credName, 'source'], 'a canary tenant may hold only local canary secrets (never a real upstream)');
      }
    }
    if (t.idp) {
      const other = issuers.get(t.idp.issuer);
      if (other) issue(['tenants', tenantId, 'idp', 'issuer'], `issuer already belongs to tenant "${other}"`);
      issuers.set(t.idp.issuer, tenantId);
      t.idp.scope?.forEach((name, i) => {
        if (!Object.hasOwn(t.tools, name)) issue(['tenants', tenantId, 'idp', 'scope', i], `unknown tool "${name}"`);
      });
      t.idp.login?.domains.forEach((domain, i) => {
        const owner = domains.get(domain);
        if (owner) issue(['tenants', tenantId, 'idp', 'login', 'domains', i], `domain already belongs to tenant "${owner}"`);
        domains.set(domain, tenantId);
      });
    }
  }
  // One issuer string names one source of trust: a jwt-bearer assertion is routed by its `iss`.
  const workloadIssuers = new Map<string, string>();
  for (const [name, w] of Object.entries(policy.workload_issuers)) {
    const path = ['workload_issuers', name, 'issuer'];
    if (w.issuer === b.issuer) issue(path, 'must not be the broker\'s own issuer');
    else if (issuers.has(w.issuer)) issue(path, `already the idp issuer of tenant "${issuers.get(w.issuer)}"`);
    else if (workloadIssuers.has(w.issuer)) issue(path, `already the issuer of workload_issuers "${workloadIssuers.get(w.issuer)}"`);
    workloadIssuers.set(w.issuer, name);
  }
  for (const [clientId, client] of Object.entries(policy.clients)) {
    if (client.tenant !== undefined && !Object.hasOwn(policy.tenants, client.tenant)) issue(['clients', clientId, 'tenant'], `unknown tenant "${client.tenant}"`);
    else if (client.tenant !== undefined && !policy.tenants[client.tenant]!.idp?.login) issue(['clients', clientId, 'tenant'], `tenant "${client.tenant}" has no idp.login`);
    client.redirect_uris.forEach((uri, i) => {
      const problem = redirectUriProblem(uri);
      if (problem) issue(['clients', clientId, 'redirect_uris', i], problem);
    });
  }
}

/** The subject forms each workload issuer kind issues (SPIFFE ID; Kubernetes `system:serviceaccount:NS:NAME`). */
const WORKLOAD_SUBJECT = {
  jwt: /^[^\u0000-\u001f\u007f]+$/,
  spiffe: /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+$/,
  kubernetes: /^system:serviceaccount:[a-z0-9]([a-z0-9-]*[a-z0-9])?:[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/,
} as const;
const WORKLOAD_SUBJECT_HINT = {
  jwt: 'must be printable text',
  spiffe: 'must be a SPIFFE ID with a path (spiffe://trust-domain/path)',
  kubernetes: 'must be a service account, system:serviceaccount:NAMESPACE:NAME',
} as const;

/**
 * OAuth 2.1 §2.3.1 / RFC 9700: a redirect URI is compared exactly, so it must be absolute, without a
 * fragment, and over https unless it is a loopback address (a native app's local listener).
 */
export function redirectUriProblem(uri: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    return 'must be an absolute URL';
  }
  if (parsed.hash !== '' || uri.includes('#')) return 'must not have a fragment';
  if (parsed.username !== '' || parsed.password !== '') return 'must not carry user information';
  const loopback = parsed.hostname === '127.0.0.1' || parsed.hostname === '[::1]' || parsed.hostname === 'localhost';
  // RFC 8252 §7.1: a native app's private-use scheme is a reversed domain name (com.example.app:/cb).
  const privateUse = /^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(parsed.protocol);
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback) && !privateUse) return 'must be https, http on a loopback address, or a private-use scheme (com.example.app:/…)';
  return null;
}

/** Two different names that fold alike, if any: forced or checked fields must each have one spelling. */
function findFoldedPair(names: string[]): [string, string] | null {
  const seen = new Map<string, string>();
  for (const name of names) {
    const folded = foldKey(name);
    const other = seen.get(folded);
    if (other !== undefined && other !== name) return [other, name];
    seen.set(folded, name);
  }
  return null;
}
