import { Router, type RequestHandler } from 'express';
import type { Logger } from 'pino';
import type { ApprovalStore } from '../approvals/approval-store';
import type { ShowApproval } from '../approvals/approval-view';
import type { Clock } from '../clock';
import { BrokerError } from '../errors';
import type { Identities } from '../http/authenticate';
import type { Policy } from '../policy/schema';
import { consoleApi } from './console-api';
import { requireCsrf, requireSameOrigin, requireSession } from './console-guard';
import { createConsoleSessions, type ConsoleSessions } from './console-sessions';
import { createMetricsHistory } from './metrics-history';
import { consoleSecurityHeaders } from './security-headers';
import { signInRoutes } from './sign-in';
import { consoleAssets, findConsoleAssets } from './static-assets';

export interface ConsoleDeps {
  operators: Identities;
  operatorApi: RequestHandler;
  policy: () => Policy;
  approvals: Pick<ApprovalStore, 'listPending'>;
  showApproval: ShowApproval;
  policyVersion?: () => string;
  /** The /metrics text. */
  scrapeMetrics: () => Promise<string>;
  clock: Clock;
  logger: Logger;
  sessions?: ConsoleSessions;
  /** Where the built page and bundle are (default: dist/console-ui of this package). */
  assetsDir?: string | null;
}

/**
 * The operator console, mounted at /console. Order matters: headers first (every answer, errors too),
 * then the page (public: it holds no data), sign-in, and only then the data API behind a session,
 * same-origin and CSRF check.
 */
export function consoleRoutes(deps: ConsoleDeps): Router {
  const router = Router();
  const sessions = deps.sessions ?? createConsoleSessions({ clock: deps.clock });
  const history = createMetricsHistory({ clock: deps.clock, scrape: deps.scrapeMetrics });
  const assets = deps.assetsDir === undefined ? findConsoleAssets() : deps.assetsDir;

  router.use(consoleSecurityHeaders());
  if (assets) router.use(consoleAssets(assets));
  else router.get('/', (_req, _res, next) => next(new BrokerError('not_found', 'the console is not built on this broker (npm run build)')));
  router.use(signInRoutes({ sessions, operators: deps.operators, logger: deps.logger }));
  router.use('/api', requireSession(sessions, deps.operators), requireSameOrigin(), requireCsrf(sessions));
  router.use(consoleApi({ ...deps, history }));
  return router;
}
