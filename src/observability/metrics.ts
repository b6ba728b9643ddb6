import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { droppedLogLines } from './logger';

/**
 * Prometheus metrics. No label ever carries a tenant, principal, session or tool: labels are
 * bounded enums (decision, reason, grant, source), so neither cardinality nor tenant names leak.
 */
export interface BrokerMetrics {
  registry: Registry;
  decisions: Counter<'decision' | 'reason'>;
  authorizeSeconds: Histogram<'decision'>;
  tokensIssued: Counter<'grant'>;
  tokenErrors: Counter<'error'>;
  revocations: Counter<'kind'>;
  killedInFlight: Counter;
  killedInFlightLeasesRevoked: Counter;
  upstreamErrors: Counter<'source'>;
  auditFailures: Counter;
  keyAgeSeconds: Gauge<'state'>;
  nextRotationSeconds: Gauge<'kind'>;
  certificateAgeSeconds: Gauge<'kind'>;
  /** 1 for the policy version now serving (a content hash, never a tenant name), so replicas' convergence shows. */
  policyVersion: Gauge<'version'>;
  policyReloads: Counter<'result'>;
  /** Calls denied budget_exceeded, over all tenants (no tenant label). */
  budgetDenials: Counter;
  /** Log lines dropped while stdout was not being read (logger.ts bounds its buffer); read at each scrape. */
  logLinesDropped: Counter;
}

export function createMetrics(): BrokerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'bulkhead_process_' });
  const registers = [registry];
  let counted = 0;
  return {
    registry,
    decisions: new Counter({ name: 'bulkhead_authorize_decisions_total', help: 'Authorize decisions by outcome and reason code.', labelNames: ['decision', 'reason'], registers }),
    authorizeSeconds: new Histogram({
      name: 'bulkhead_authorize_duration_seconds',
      help: 'Time to decide an authorize request.',
      labelNames: ['decision'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    tokensIssued: new Counter({ name: 'bulkhead_tokens_issued_total', help: 'Tokens issued by grant type.', labelNames: ['grant'], registers }),
    tokenErrors: new Counter({ name: 'bulkhead_token_errors_total', help: 'Token endpoint errors by OAuth error code.', labelNames: ['error'], registers }),
    revocations: new Counter({ name: 'bulkhead_revocations_total', help: 'Revocations by target kind.', labelNames: ['kind'], registers }),
    killedInFlight: new Counter({ name: 'bulkhead_killed_in_flight_total', help: 'Calls a revoke or quarantine reached while their credential was resolving; each was denied.', registers }),
    killedInFlightLeasesRevoked: new Counter({
      name: 'bulkhead_killed_in_flight_leases_revoked_total',
      help: 'Upstream leases minted for calls a kill reached in flight, revoked before anyone saw them.',
      registers,
    }),
    upstreamErrors: new Counter({ name: 'bulkhead_upstream_errors_total', help: 'Upstream credential source failures.', labelNames: ['source'], registers }),
    auditFailures: new Counter({ name: 'bulkhead_audit_write_failures_total', help: 'Audit appends that could not be made durable.', registers }),
    keyAgeSeconds: new Gauge({ name: 'bulkhead_signing_key_age_seconds', help: 'Age of each signing key by lifecycle state.', labelNames: ['state'], registers }),
    nextRotationSeconds: new Gauge({ name: 'bulkhead_next_rotation_seconds', help: 'Seconds until the next scheduled rotation.', labelNames: ['kind'], registers }),
    certificateAgeSeconds: new Gauge({ name: 'bulkhead_certificate_age_seconds', help: 'Age of the current certificate.', labelNames: ['kind'], registers }),
    policyVersion: new Gauge({ name: 'bulkhead_policy_info', help: 'The policy version this replica serves (value 1).', labelNames: ['version'], registers }),
    budgetDenials: new Counter({ name: 'bulkhead_budget_denials_total', help: 'Calls denied because a tenant or principal budget was spent (all tenants).', registers }),
    logLinesDropped: new Counter({
      name: 'bulkhead_log_lines_dropped_total',
      help: 'Log lines dropped because stdout was not being read (the log buffer is bounded).',
      registers,
      collect() {
        const total = droppedLogLines();
        if (total > counted) this.inc(total - counted);
        counted = total;
      },
    }),
    policyReloads: new Counter({ name: 'bulkhead_policy_reloads_total', help: 'Policy reloads by result (applied, unchanged, refused).', labelNames: ['result'], registers }),
  };
}
