import { z, type ZodObject, type ZodType } from 'zod';
import { authorizationQuery } from '../../oauth/authorization-request';
import { CALLBACK_PATH } from '../../oauth/authorization-flow';
import { authorizationCodeParams } from '../../tokens/authorization-code-grant';
import { AUTHORIZATION_CODE_GRANT, INTROSPECTION_PATH, REVOCATION_PATH } from '../../tokens/metadata';
import { TOKEN_EXCHANGE_GRANT } from '../../tokens/token-exchange';
import { clientParams, tokenParams } from '../../tokens/token-introspection';
import { clientCredentialsParams, tokenExchangeParams } from '../../tokens/token-service';
import { checkpointsQuery, correlateQuery, exportQuery, sealBody, searchQuery, verifyQuery } from '../routes/audit';
import { countersignBody, deleteBody, exportBody as tenantExportBody } from '../routes/tenants';
import { authorizeBody, completeBody, manifestBody } from '../server-bodies';
import { approvalParams, approvalsQuery, decideBody, liftQuarantineBody, quarantinesQuery, reloadBody, restoreBody, revocationsQuery, revokeBody, rotateBody, tenantParams } from '../routes/operator';
import * as answer from './responses';

/**
 * The broker's HTTP operations, one entry each: the one list the OpenAPI document is generated from,
 * that the unmatched-route handler answers 405 from, and that the route test holds the server to.
 * Request schemas are imported from the routes that validate with them, never restated here.
 */

export type Security = 'public' | 'server' | 'operator' | 'client';
export type ErrorShape = 'error' | 'deny' | 'oauth' | 'html';

export interface Response {
  description: string;
  /** JSON unless `type` says otherwise. */
  schema?: ZodType;
  type?: 'application/json' | 'text/html' | 'text/plain';
  headers?: Record<string, string>;
}

export interface Operation {
  method: 'get' | 'post';
  /** OpenAPI form: `{id}` for a path parameter. */
  path: string;
  id: string;
  summary: string;
  tag: 'health' | 'tokens' | 'authorize' | 'operator' | 'audit' | 'contract';
  security: Security;
  body?: ZodType;
  /** Bodies the endpoint takes (default JSON only). */
  forms?: boolean;
  query?: ZodObject;
  params?: ZodObject;
  /** Successful answers and documented refusals; the generic ones (400/401/413/415/503) are added by shape. */
  responses: Record<number, Response>;
  /** How errors are shaped; each adds the statuses that shape can answer. */
  errors: ErrorShape;
  /** Statuses beyond the generic ones for this shape. */
  also?: number[];
}

const json = (description: string, schema: ZodType): Response => ({ description, schema });

const grant = <T extends ZodObject>(type: string, params: T) => params.extend({ grant_type: z.literal(type) });
/** The grants as the token service validates them (each grant's own schema), one branch per grant_type. */
const tokenRequest = z.union([
  grant('client_credentials', clientCredentialsParams),
  grant(TOKEN_EXCHANGE_GRANT, tokenExchangeParams),
  grant(AUTHORIZATION_CODE_GRANT, authorizationCodeParams),
]);
const callbackQuery = z
  .object({ state: z.string().max(256), code: z.string().optional(), error: z.string().optional(), error_description: z.string().optional(), iss: z.string().optional() })
  .describe("the tenant IdP's authorization response (read by the login flow)");

export const OPERATIONS: readonly Operation[] = [
  { method: 'get', path: '/healthz', id: 'healthz', summary: 'liveness: the process answers', tag: 'health', security: 'public', errors: 'error', responses: { 200: json('alive', answer.healthAnswer) } },
  {
    method: 'get',
    path: '/readyz',
    id: 'readyz',
    summary: 'readiness of every dependency, and the policy version this replica serves',
    tag: 'health',
    security: 'public',
    errors: 'error',
    responses: { 200: json('ready', answer.readyAnswer), 503: json('a dependency is not ready (the same body, status not_ready)', answer.readyAnswer) },
  },
  { method: 'get', path: '/metrics', id: 'metrics', summary: 'Prometheus metrics (no tenant labels)', tag: 'health', security: 'public', errors: 'error', responses: { 200: { description: 'Prometheus text format', type: 'text/plain' } } },
  { method: 'get', path: '/openapi.json', id: 'openapi', summary: 'this document', tag: 'contract', security: 'public', errors: 'error', responses: { 200: json('OpenAPI 3.1', z.looseObject({ openapi: z.string() })) } },

  { method: 'get', path: '/.well-known/jwks.json', id: 'jwks', summary: 'the token-signing public keys: next, current, previous', tag: 'tokens', security: 'public', errors: 'error', responses: { 200: json('JWK set', answer.jwksAnswer) } },
  { method: 'get', path: '/.well-known/oauth-authorization-server', id: 'authorizationServerMetadata', summary: 'RFC 8414 metadata', tag: 'tokens', security: 'public', errors: 'error', responses: { 200: json('metadata', answer.metadataAnswer) } },
  { method: 'get', path: '/.well-known/bulkhead-audit-keys.json', id: 'auditKeys', summary: 'every key that ever signed an audit checkpoint, for auditors to pin', tag: 'audit', security: 'public', errors: 'error', responses: { 200: json('audit public keys', answer.auditKeysAnswer) } },
  {
    method: 'post',
    path: '/v1/token',
    id: 'token',
    summary: 'OAuth 2.0 token endpoint: client_credentials, RFC 8693 token exchange, authorization_code + PKCE',
    tag: 'tokens',
    security: 'client',
    body: tokenRequest,
    forms: true,
    errors: 'oauth',
    responses: { 200: json('an access token', answer.tokenAnswer) },
  },
  {
    method: 'post',
    path: INTROSPECTION_PATH,
    id: 'introspect',
    summary: 'RFC 7662 introspection, for a registered MCP server',
    tag: 'tokens',
    security: 'server',
    body: tokenParams,
    forms: true,
    errors: 'oauth',
    responses: { 200: json('the token state', answer.introspectionAnswer) },
  },
  {
    method: 'post',
    path: REVOCATION_PATH,
    id: 'revokeToken',
    summary: 'RFC 7009 revocation, by the client the token was issued to',
    tag: 'tokens',
    security: 'client',
    body: tokenParams.extend(clientParams.shape),
    forms: true,
    errors: 'oauth',
    responses: { 200: { description: 'revoked (or was not a valid token: RFC 7009 §2.2)' } },
  },
  {
    method: 'get',
    path: '/authorize',
    id: 'authorize',
    summary: 'authorization endpoint (browser): federates the login to the tenant IdP',
    tag: 'tokens',
    security: 'public',
    query: authorizationQuery,
    errors: 'html',
    responses: {
      200: { description: 'the organisation page (which tenant signs in)', type: 'text/html' },
      303: { description: 'to the tenant IdP, or back to the client with an error', headers: { Location: 'where to go' } },
    },
  },
  {
    method: 'get',
    path: CALLBACK_PATH,
    id: 'authorizeCallback',
    summary: "the tenant IdP's answer; redirects back to the client with a code",
    tag: 'tokens',
    security: 'public',
    query: callbackQuery,
    errors: 'html',
    responses: { 303: { description: 'back to the client', headers: { Location: 'the client redirect URI' } } },
  },

  {
    method: 'post',
    path: '/v1/authorize',
    id: 'authorizeCall',
    summary: 'authorize one tool call, and resolve its upstream credential now',
    tag: 'authorize',
    security: 'server',
    body: authorizeBody,
    errors: 'deny',
    also: [403, 429],
    responses: { 200: json('allowed', answer.allowAnswer) },
  },
  { method: 'post', path: '/v1/complete', id: 'complete', summary: 'a call finished: frees its slot, feeds the anomaly rule', tag: 'authorize', security: 'server', body: completeBody, errors: 'error', also: [404, 409], responses: { 200: json('recorded', answer.completeAnswer) } },
  { method: 'post', path: '/v1/manifest', id: 'manifest', summary: 'the tools this token may call on this server', tag: 'authorize', security: 'server', body: manifestBody, errors: 'deny', also: [403], responses: { 200: json('visible tools', answer.manifestAnswer) } },

  { method: 'post', path: '/v1/revoke', id: 'revoke', summary: 'kill switch: revoke exactly one tenant, session, principal or token', tag: 'operator', security: 'operator', body: revokeBody, errors: 'error', also: [404], responses: { 200: json('revoked', answer.revokeAnswer) } },
  { method: 'post', path: '/v1/restore', id: 'restore', summary: 'lift a tenant revocation', tag: 'operator', security: 'operator', body: restoreBody, errors: 'error', also: [404], responses: { 200: json('restored', answer.restoreAnswer) } },
  { method: 'get', path: '/v1/revocations', id: 'listRevocations', summary: 'the revocations in force (kind, target, TTL), oldest first', tag: 'operator', security: 'operator', query: revocationsQuery, errors: 'error', also: [404], responses: { 200: json('revocations', answer.revocationsAnswer) } },
  { method: 'get', path: '/v1/quarantines', id: 'listQuarantines', summary: 'quarantined sessions, waiting for an operator', tag: 'operator', security: 'operator', query: quarantinesQuery, errors: 'error', also: [404], responses: { 200: json('quarantines', answer.quarantinesAnswer) } },
  { method: 'post', path: '/v1/quarantines/lift', id: 'liftQuarantine', summary: 'release a quarantined session, with a reason (audited)', tag: 'operator', security: 'operator', body: liftQuarantineBody, errors: 'error', also: [404, 409], responses: { 200: json('lifted', answer.liftAnswer) } },
  { method: 'get', path: '/v1/tenants/{id}', id: 'tenantStatus', summary: 'revoked?, live sessions, quota and budget use', tag: 'operator', security: 'operator', params: tenantParams, errors: 'error', also: [404], responses: { 200: json('status', answer.tenantAnswer) } },
  { method: 'post', path: '/v1/tenants/{id}/export', id: 'exportTenant', summary: "everything the broker holds about a tenant (secret values only with include_secrets), audited", tag: 'operator', security: 'operator', params: tenantParams, body: tenantExportBody, errors: 'error', also: [404], responses: { 200: json('the export', answer.tenantExportAnswer) } },
  { method: 'post', path: '/v1/tenants/{id}/delete', id: 'deleteTenant', summary: 'shred a tenant (confirm: the tenant id again); an interrupted delete resumes; purge_audit also removes its audit stream once an export covers it (else 409 export_required)', tag: 'operator', security: 'operator', params: tenantParams, body: deleteBody, errors: 'error', also: [404, 409], responses: { 200: json('deleted', answer.tenantDeleteAnswer) } },
  { method: 'post', path: '/v1/selftest/countersign', id: 'countersignSelftest', summary: "countersign a selftest report's digest with the audit key", tag: 'operator', security: 'operator', body: countersignBody, errors: 'error', responses: { 200: json('the countersignature', answer.countersignAnswer) } },
  { method: 'get', path: '/v1/approvals', id: 'listApprovals', summary: "a tenant's pending approvals", tag: 'operator', security: 'operator', query: approvalsQuery, errors: 'error', also: [404], responses: { 200: json('pending', answer.approvalsAnswer) } },
  {
    method: 'post',
    path: '/v1/approvals/{id}/{decision}',
    id: 'decideApproval',
    summary: 'approve or deny a pending call',
    tag: 'operator',
    security: 'operator',
    params: approvalParams,
    body: decideBody,
    errors: 'error',
    also: [404],
    responses: { 200: json('decided', answer.decisionAnswer) },
  },
  { method: 'post', path: '/v1/policy/reload', id: 'reloadPolicy', summary: "re-read the broker's policy file; a bad one is refused and the old one keeps serving", tag: 'operator', security: 'operator', body: reloadBody, errors: 'error', also: [409, 422], responses: { 200: json('reloaded', answer.reloadAnswer) } },
  { method: 'post', path: '/v1/keys/rotate', id: 'rotateKeys', summary: 'move the signing keys one step', tag: 'operator', security: 'operator', body: rotateBody, errors: 'error', also: [409], responses: { 200: json('rotated', answer.rotateAnswer) } },

  { method: 'get', path: '/v1/audit', id: 'searchAudit', summary: "search one tenant's audit stream", tag: 'audit', security: 'operator', query: searchQuery, errors: 'error', also: [404], responses: { 200: json('one page of events', answer.auditPage) } },
  { method: 'get', path: '/v1/audit/verify', id: 'verifyAudit', summary: "verify one tenant's chain against its signed checkpoints", tag: 'audit', security: 'operator', query: verifyQuery, errors: 'error', also: [404], responses: { 200: json('the verdict', answer.verifyAnswer) } },
  { method: 'get', path: '/v1/audit/checkpoints', id: 'auditCheckpoints', summary: "one tenant's signed checkpoints", tag: 'audit', security: 'operator', query: checkpointsQuery, errors: 'error', also: [404], responses: { 200: json('checkpoints', answer.checkpointsAnswer) } },
  { method: 'get', path: '/v1/audit/export', id: 'exportAudit', summary: 'a signed, verifiable bundle of one tenant\'s records', tag: 'audit', security: 'operator', query: exportQuery, errors: 'error', also: [404], responses: { 200: json('the bundle', answer.bundleAnswer) } },
  { method: 'post', path: '/v1/audit/seal', id: 'sealAudit', summary: 'seal a broken stream: a signed record of the break, so the tenant is served again (nothing is edited)', tag: 'audit', security: 'operator', body: sealBody, errors: 'error', also: [404, 409], responses: { 200: json('sealed', answer.sealAnswer) } },
  { method: 'get', path: '/v1/audit/correlate', id: 'correlateAudit', summary: 'from a platform request id to the tenant records that hold it (recorded in each stream it reached)', tag: 'audit', security: 'operator', query: correlateQuery, errors: 'error', responses: { 200: json('matches', answer.correlateAnswer) } },
];

/** The express form of an OpenAPI path (`{id}` → `:id`). */
export function expressPath(path: string): string {
  return path.replace(/\{([^}]+)\}/g, ':$1');
}

/** The operations whose path template matches a request path, whatever their method. */
export function operationsAt(path: string): Operation[] {
  return OPERATIONS.filter((op) => templateOf(op.path).test(path));
}

function templateOf(path: string): RegExp {
  const escaped = path.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped.replace(/\{[^}]+\}/g, '[^/]+')}$`);
}
