import { randomUUID } from 'node:crypto';
import type { RequestListener } from 'node:http';
import express, { Router, type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import { consoleRoutes } from '../console/console-routes';
import { BrokerError } from '../errors';
import { authenticate, type Identities, type OnUnauthenticated } from './authenticate';
import { requireJsonBody } from './content-type';
import { requestLineLogger } from '../observability/logger';
import { bindRequestContext } from '../observability/request-context';
import { strictJsonBody } from './json-body';
import { bodyParserError, sendDeny, sendError } from './respond';
import { authorizationRoutes, type AuthorizationRouteDeps } from './routes/authorization';
import { auditKeysRoute, auditRoutes, type AuditRouteDeps } from './routes/audit';
import { healthRoutes, type HealthDeps } from './routes/health';
import { openApiRoute } from './routes/openapi';
import { operationsAt } from './contract/operations';
import { operatorRoutes, type OperatorRouteDeps } from './routes/operator';
import { createServerEndpoints, ENDPOINTS, type ServerEndpointDeps } from './server-endpoints';
import { parseSize } from '../policy/size';
import { tokenRoutes, type TokenRouteDeps } from './routes/token';
import { tenantRoutes, type TenantRouteDeps } from './routes/tenants';
import { INTROSPECTION_PATH } from '../tokens/metadata';

export interface HttpAppDeps {
  logger: Logger;
  bodyLimit: string;
  servers: Identities;
  operators: Identities;
  token: Omit<TokenRouteDeps, 'logger'>;
  server: Omit<ServerEndpointDeps, 'logger' | 'servers' | 'bodyLimit' | 'onUnauthenticated'>;
  operator: Omit<OperatorRouteDeps, 'logger'>;
  authorization: Omit<AuthorizationRouteDeps, 'logger'>;
  audit: Omit<AuditRouteDeps, 'logger'>;
  tenants: Omit<TenantRouteDeps, 'logger'>;
  health: HealthDeps;
  /** Records callers whose server key or operator token did not authenticate (the security stream). */
  onUnauthenticated?: OnUnauthenticated;
}

/**
 * The HTTP surface. Each route group sits behind its own authentication; JSON everywhere, including
 * for 404s and body-parser failures, and never a stack trace or an HTML page.
 *
 * One port, two stacks: the three endpoints an MCP server calls on every tool call (authorize,
 * complete, manifest) are served on node:http directly (server-endpoints.ts); every other request
 * goes on to express.
 */
/** The broker's request listener; `express` is the stack behind it, for tests that list its routes (with ENDPOINTS). */
export type HttpApp = RequestListener & { readonly express: Express };

export function createHttpApp(deps: HttpAppDeps): HttpApp {
  const bodyLimit = parseSize(deps.bodyLimit);
  if (bodyLimit === undefined) throw new Error(`broker.body_limit "${deps.bodyLimit}" is not a size`);
  const serverEndpoints = createServerEndpoints({ ...deps.server, logger: deps.logger, servers: deps.servers, bodyLimit, onUnauthenticated: deps.onUnauthenticated });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use(requestLog(deps.logger));
  app.use(requireJsonBody());
  app.use(strictJsonBody({ limit: bodyLimit }));
  app.use('/v1/token', express.urlencoded({ extended: false, limit: deps.bodyLimit, parameterLimit: 50 }));
  app.use(bindRequestContext());

  app.use(healthRoutes(deps.health));
  app.use(openApiRoute());
  app.use(INTROSPECTION_PATH, authenticate('server', deps.servers, deps.onUnauthenticated));
  app.use(auditKeysRoute(deps.audit.keys));
  app.use(tokenRoutes({ ...deps.token, logger: deps.logger }));
  app.use(authorizationRoutes({ ...deps.authorization, logger: deps.logger }));
  // What reaches express under these paths is not a POST to the endpoint itself (server-endpoints.ts
  // took those): it is still authenticated first, then a 404 like any unknown route.
  app.use(Object.values(ENDPOINTS), authenticate('server', deps.servers, deps.onUnauthenticated));
  const operatorOnly = authenticate('operator', deps.operators, deps.onUnauthenticated);
  // Every operator route's prefix: a route added to operatorRoutes without one here would be open (test/isolation/operator-undo.test.ts tries).
  app.use(['/v1/revoke', '/v1/restore', '/v1/revocations', '/v1/quarantines', '/v1/audit', '/v1/tenants', '/v1/approvals', '/v1/keys', '/v1/policy', '/v1/selftest'], operatorOnly);
  // One router for the whole operator API (audit included), so the console below runs exactly it.
  const operatorApi = Router();
  operatorApi.use(operatorRoutes({ ...deps.operator, logger: deps.logger }));
  operatorApi.use(auditRoutes({ ...deps.audit, logger: deps.logger }));
  operatorApi.use(tenantRoutes({ ...deps.tenants, logger: deps.logger }));
  app.use(operatorApi);
  // The console runs the same operator routes in-process, behind its own session, same-origin and CSRF checks.
  app.use(
    '/console',
    consoleRoutes({
      operators: deps.operators,
      operatorApi,
      policy: deps.operator.policy,
      approvals: deps.operator.approvals,
      showApproval: deps.operator.showApproval,
      policyVersion: deps.health.policyVersion,
      scrapeMetrics: () => deps.health.registry.metrics(),
      clock: deps.operator.clock,
      logger: deps.logger,
    }),
  );

  app.use((req, res, next) => {
    // A known path asked with another method is a 405 naming the methods it takes (from the API's one list).
    const methods = [...new Set(operationsAt(req.path).map((op) => op.method.toUpperCase()))];
    if (methods.length) res.setHeader('Allow', methods.join(', '));
    const notFound = methods.length
      ? new BrokerError('method_not_allowed', `${req.method} is not allowed on ${req.path} (use ${methods.join(' or ')})`)
      : new BrokerError('not_found', `no route for ${req.method} ${req.path}`);
    // The token endpoint answers in RFC 6749 shape even to a wrong method; the error handler knows how.
    if (req.path.startsWith('/v1/token')) next(notFound);
    else sendError(req, res, notFound, deps.logger);
  });
  app.use(errorHandler(deps.logger));
  const listener: RequestListener = (req, res) => {
    if (!serverEndpoints(req, res)) app(req, res);
  };
  return Object.assign(listener, { express: app });
}

function requestLog(logger: Logger): RequestHandler {
  const requestLines = requestLineLogger(logger);
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const id = randomUUID();
    res.locals.requestId = id;
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => {
      // Allow-list only: method, path without query, status, duration, ids, and the reason code of a deny
      // (set where the answer is made, or noted by a refusal answered otherwise). No headers, no bodies.
      requestLines.info(
        { requestId: id, method: req.method, path: req.path, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6, server: res.locals.server, operator: res.locals.operator, reason: res.locals.noted_reason ?? res.locals.reason },
        'request',
      );
    });
    next();
  };
}

function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const error = bodyParserError(err) ?? err;
    if (req.path.startsWith('/v1/token')) {
      // The token endpoints (token, introspection, revocation) speak RFC 6749 errors, even about unreadable bodies.
      const known = error instanceof BrokerError;
      res.locals.reason ??= known ? error.reason : 'internal_error';
      if (!known) logger.error({ err, requestId: res.locals.requestId }, 'token endpoint failed');
      const code = known && error.status === 401 ? 'invalid_client' : 'invalid_request';
      if (known && error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="bulkhead"');
      res.status(known ? error.status : 500).json(known ? { error: code, error_description: error.message } : { error: 'server_error', error_description: 'internal error' });
      return;
    }
    // A deny before the route ran (server authentication) still echoes the caller's call_id.
    if (req.path === '/v1/authorize' || req.path === '/v1/manifest') sendDeny(req, res, error, logger, echoedCallId(req.body));
    else sendError(req, res, error, logger);
  };
}

function echoedCallId(body: unknown): string | undefined {
  const id = (body as { call_id?: unknown } | undefined)?.call_id;
  return typeof id === 'string' ? id.slice(0, 128) : undefined;
}
