import type { ApprovalStore } from '../approvals/approval-store';
import type { ArgumentMacs } from '../argument-keys/argument-macs';
import type { ArgumentSeal } from '../approvals/sealed-arguments';
import type { AuditLog } from '../audit/audit-log';
import type { DenyBudget } from '../audit/deny-budget';
import type { Clock } from '../clock';
import type { CredentialResolver } from '../credentials/credential-resolver';
import type { ResolvedCredential } from '../credentials/credential-source';
import { BrokerError, failClosed as step, isBrokerError, type Reason } from '../errors';
import type { Policy } from '../policy/schema';
import { policyVersion } from '../policy/version';
import type { QuotaStore } from '../quotas/quota-store';
import type { RevocationStore } from '../revocation/revocation-store';
import type { SessionStore } from '../sessions/session-store';
import type { VerifiedToken } from '../tokens/claims';
import type { TokenAttempt } from '../tokens/token-rejection';
import type { TokenDenies } from '../audit/token-denies';
import { isToolAllowed, principalInPolicy } from './allowed-tools';
import { createInFlightCalls, type InFlightCalls } from './in-flight-calls';
import type { Spend, Spending } from './spend';
import { checkResourceScope } from './resource-scope';
import { findShadowingKey } from './shadowed-fields';
import { applyInject, findTenantOverride } from './tenant-override';
import { recordedTool, toolInMessage } from './tool-name';

export interface AuthorizeRequest {
  /** The authenticated MCP server (from its key or client certificate), never from the body. */
  server: string;
  token: string;
  tool: string;
  arguments: Record<string, unknown>;
  /** The caller's call id, or one the HTTP layer made up so that a deny can name it too. */
  call_id: string;
  /** True when the MCP server chose call_id: only then can it collide with a call in flight. */
  callIdFromCaller: boolean;
  /** Tenant identifiers sent at the top level of the body; any that differs is a tenant_override. */
  claimedTenants: string[];
}

export interface AllowDecision {
  decision: 'allow';
  call_id: string;
  tenant: string;
  principal: string;
  session: string;
  tool: string;
  arguments: Record<string, unknown>;
  credential: { source: string; ref: string; value: string; lease_id?: string; expires_at?: string };
  expires_at: string;
}

export interface AuthorizerDeps {
  policy: () => Policy;
  /** Records its own refusals (expired, wrong audience, forged…) where they belong (token-denies.ts). */
  verifier: { verify(token: string, audience: string, attempt?: TokenAttempt): Promise<VerifiedToken> };
  revocations: Pick<RevocationStore, 'check'>;
  quotas: Pick<QuotaStore, 'takeCall' | 'acquireSlot' | 'releaseSlot'>;
  sessions: Pick<SessionStore, 'touch' | 'isQuarantined' | 'putCall' | 'hasCall' | 'takeCall'>;
  approvals: Pick<ApprovalStore, 'request' | 'consume'>;
  /** Seals the effective arguments of a call that waits for approval, for operators' eyes only (absent: the hash only). */
  argumentSeal?: Pick<ArgumentSeal, 'seal'>;
  credentials: Pick<CredentialResolver, 'resolve' | 'revokeLease' | 'waitsOnUpstream'>;
  /** The tenant-keyed MAC of the effective arguments (recorded, and what approvals match on). */
  argumentMacs: Pick<ArgumentMacs, 'mac'>;
  audit: Pick<AuditLog, 'append'>;
  /** Where denies are recorded: one by one within the tenant's budget, summarised past it. */
  denies: Pick<DenyBudget, 'record'>;
  /** Where verifyLive records a revoked token; absent in unit tests that do not look. */
  tokenDenies?: Pick<TokenDenies, 'refusedSigned'>;
  /** Budgets and per-credential rates; absent in unit tests that do not exercise spending. */
  spending?: Spending;
  clock: Clock;
  /** The calls this process is deciding, which kills reach (in-flight-calls.ts); one per process. */
  inFlight?: InFlightCalls;
  /** How long an approval request stays open. */
  approvalTtlMs?: number;
  /** No tool name: it may be agent-chosen text, and metrics carry no per-call labels anyway. */
  onDecision?: (decision: 'allow' | 'deny', reason: string) => void;
  /** A call a kill reached after its credential was resolved: it is denied and its leases revoked (counted here). */
  onKilledInFlight?: (leasesRevoked: number) => void;
  /**
   * The allow record after an intent could not be written (the call was answered on its durable
   * intent): for the log; the audit log itself refuses the next writes until the fault is gone.
   */
  onOutcomeUnrecorded?: (tenant: string, callId: string, err: unknown) => void;
}

export interface Authorizer {
  authorize(request: AuthorizeRequest): Promise<AllowDecision>;
  /** Verifies a token for this server and checks revocation, recording a refusal; used by manifest. */
  verifyLive(server: string, token: string, endpoint: string): Promise<VerifiedToken>;
}

/**
 * The authorize pipeline. The order is the threat model: who is asking (server, then token), is it
 * still alive (revocation, quarantine), what may it touch (tool, tenant binding, resource), how much
 * (quotas), does a human need to say yes (approval), and only then the upstream credential, which is
 * released to the caller only after the audit record is durable.
 *
 * A credential from an upstream (a source that can hang) is resolved while its audit record is being
 * made durable, not after: the call's `intent` record (every check passed, credential being resolved) is
 * appended as the resolve starts, the credential is released once both are done and the final kill check
 * passed, and the outcome follows as the `allow` record (or a `deny`, if the upstream or a kill refused
 * it). The intent is the allow's durable record; a broker that stops between the two leaves an intent
 * with no outcome, which `audit verify` lists as a call that may have received its credential. A local
 * credential (no wait to overlap) keeps the single allow record, written before the answer.
 */
export function createAuthorizer(deps: AuthorizerDeps): Authorizer {
  const approvalTtlMs = deps.approvalTtlMs ?? 15 * 60_000;
  const inFlight = deps.inFlight ?? createInFlightCalls();

  async function assertNotRevoked(verified: VerifiedToken): Promise<void> {
    const revoked = await step('state_unavailable', 'revocation state is unavailable', () => deps.revocations.check({ tid: verified.tenant, sub: verified.principal, sid: verified.session, jti: verified.jti, iat: Math.floor(verified.issuedAt / 1000) }));
    if (revoked) throw new BrokerError(revoked, revocationMessage(revoked));
  }

  async function verifyLive(server: string, token: string, endpoint: string): Promise<VerifiedToken> {
    const attempt = { endpoint, server };
    const verified = await deps.verifier.verify(token, server, attempt);
    try {
      await assertNotRevoked(verified);
    } catch (err) {
      if (isBrokerError(err) && err.status < 500) await deps.tokenDenies?.refusedSigned(verified, err.reason, attempt).catch(() => undefined);
      throw err;
    }
    return verified;
  }

  async function authorize(request: AuthorizeRequest): Promise<AllowDecision> {
    const policy = deps.policy();
    const callId = request.call_id;
    const tool = recordedTool(policy, request.server, request.tool);
    // A refused token is recorded by the verifier: in its tenant's stream if its signature verified,
    // else in the security stream. Revocation is checked first thing inside the try below, so that a
    // revoked caller's attempts are recorded in its tenant's stream like every other deny of a verified token.
    const token = await deps.verifier.verify(request.token, request.server, { endpoint: '/v1/authorize', server: request.server, call_id: callId, ...tool });
    const tenant = token.tenant;
    const event = (decision: 'allow' | 'deny' | 'intent', extra: Record<string, unknown>) => ({
      type: 'authorize' as const,
      decision,
      call_id: callId,
      server: request.server,
      principal: token.principal,
      session: token.session,
      jti: token.jti,
      ...tool,
      // The version this call read at its start: a reload meanwhile does not change what it ran under.
      policy_version: policyVersion(policy),
      ...extra,
    });
    const audit = (decision: 'allow' | 'deny' | 'intent', extra: Record<string, unknown>) => deps.audit.append(tenant, event(decision, extra));

    let slotHeld = false;
    // Entered before the first revocation check, so a kill either is visible to that check or reaches this call.
    const inFlightCall = inFlight.enter({ tid: tenant, sub: token.principal, sid: token.session, jti: token.jti, iat: Math.floor(token.issuedAt / 1000) });
    let spend: Spend | null = null;
    // The intent record's write, once started (upstream credentials only); then the allow's, not awaited.
    let intent: Promise<unknown> | null = null;
    let outcomeWritten: Promise<void> | undefined;
    try {
      await assertNotRevoked(token);
      if (await step('state_unavailable', 'session state is unavailable', () => deps.sessions.isQuarantined(tenant, token.session))) {
        throw new BrokerError('session_quarantined', 'this session is quarantined; an operator must review it');
      }
      if (!principalInPolicy(policy, token)) throw new BrokerError('token_revoked', 'this token\'s tenant or principal is no longer in the policy');
      if (!isToolAllowed(policy, { tenant, principal: token.principal, audience: request.server, scope: token.scope }, request.tool)) {
        throw new BrokerError('tool_not_allowed', `${toolInMessage(tool)} is not allowed for this token on this server`);
      }
      const toolPolicy = policy.tenants[tenant]!.tools[request.tool]!;

      const claimed = request.claimedTenants.find((t) => t !== tenant);
      if (claimed !== undefined) throw new BrokerError('tenant_override', 'the request names a tenant other than the token\'s');
      const overridePath = findTenantOverride(request.arguments, tenant);
      if (overridePath !== null) throw new BrokerError('tenant_override', `arguments.${overridePath} names a tenant other than the token's`);
      // One spelling per checked or forced field: a second one is what a case-insensitive reader may use.
      for (const field of Object.keys(toolPolicy.inject ?? {})) {
        if (findShadowingKey(request.arguments, field) !== null) throw new BrokerError('tenant_override', `arguments spell the injected field "${field}" a second way`);
      }
      if (toolPolicy.resource && findShadowingKey(request.arguments, toolPolicy.resource.arg) !== null) {
        throw new BrokerError('resource_out_of_scope', `arguments spell the resource argument "${toolPolicy.resource.arg}" a second way`);
      }

      let effective = applyInject(request.arguments, toolPolicy.inject ?? {});
      if (toolPolicy.resource) {
        const scope = checkResourceScope(effective, toolPolicy.resource);
        if (!scope.ok) throw new BrokerError('resource_out_of_scope', `arguments.${toolPolicy.resource.arg} is outside this tenant's resources: ${scope.why}`);
        effective = { ...effective, [toolPolicy.resource.arg]: scope.normalized };
      }
      // Before quotas: a tenant whose argument key is gone (shredded) or unreachable spends nothing.
      const argumentsMac = await deps.argumentMacs.mac(tenant, effective);

      // A reused call id is the caller's mistake, not load: answer it before it spends quota or takes a
      // slot. putCall still refuses a duplicate atomically if two such requests race past this check.
      if (request.callIdFromCaller && (await step('state_unavailable', 'session state is unavailable', () => deps.sessions.hasCall(callId)))) {
        throw new BrokerError('bad_request', `call_id "${callId}" is already in use`);
      }

      const quotas = policy.tenants[tenant]!.quotas;
      const rate = await step('state_unavailable', 'quota state is unavailable', () => deps.quotas.takeCall(tenant, quotas.calls_per_minute));
      if (!rate.allowed) throw new BrokerError('quota_exceeded', `tenant call quota of ${quotas.calls_per_minute} per minute is used up`, { retryAfter: rate.retryAfterSeconds });
      slotHeld = await step('state_unavailable', 'quota state is unavailable', () => deps.quotas.acquireSlot(tenant, callId, quotas.concurrency, Math.max(1000, token.expiresAt - deps.clock.now())));
      if (!slotHeld) throw new BrokerError('concurrency_exceeded', `tenant already has ${quotas.concurrency} calls in flight`, { retryAfter: 1 });
      // Budgets, then the credential's own rate: before a human or an upstream spends anything on the call.
      // A call refused after this point is refunded below.
      spend = (await deps.spending?.charge(policy, tenant, token.principal, request.tool)) ?? null;
      await deps.spending?.takeCredentialRate(policy, tenant, toolPolicy.credential);

      if (toolPolicy.approval) {
        const now = deps.clock.now();
        const used = await step('state_unavailable', 'approval state is unavailable', () => deps.approvals.consume(tenant, token.session, request.tool, argumentsMac, now));
        if (!used) {
          const call = { tenant, session: token.session, tool: request.tool, arguments_mac: argumentsMac };
          // A tenant key that cannot be reached leaves the approval with its hash only: still a deny, still decidable.
          const sealed = await deps.argumentSeal?.seal(call, effective).catch(() => undefined);
          const pending = await step('state_unavailable', 'approval state is unavailable', () =>
            deps.approvals.request({ ...call, principal: token.principal, expires_at: now + approvalTtlMs, ...(sealed === undefined ? {} : { sealed_arguments: sealed }) }, now),
          );
          throw new BrokerError('approval_required', `tool "${request.tool}" needs an operator's approval for this exact call`, { details: { approval_id: pending.id } });
        }
      }

      const spec = policy.tenants[tenant]!.credentials[toolPolicy.credential]!;
      const allowFields = { arguments_mac: argumentsMac, cost: spend?.cost };
      const writeRecord = (decision: 'allow' | 'intent', extra: Record<string, unknown>) =>
        step('audit_unavailable', 'the audit record could not be written; nothing was allowed', () => audit(decision, { ...allowFields, ...extra }));
      // From here on the call's outcome is recorded one by one (never summarised past the deny budget):
      // it is what tells its intent apart from a call the broker stopped in.
      intent = deps.credentials.waitsOnUpstream(spec) ? writeRecord('intent', {}) : null;
      // Settled below on every path; this only keeps a rejection from counting as unhandled meanwhile.
      intent?.catch(() => undefined);
      let credential: ResolvedCredential;
      try {
        credential = await deps.credentials.resolve({ tenant, name: toolPolicy.credential, spec, session: token.session, callId });
      } catch (err) {
        // The call's deny goes after its intent: wait for the intent's write to end first.
        await intent?.catch(() => undefined);
        throw err;
      }
      const leaseIds = credential.lease_id ? [credential.lease_id] : [];
      let callOpened = false;
      try {
        await intent;
        await step('state_unavailable', 'session state is unavailable', async () => {
          await deps.sessions.touch(tenant, token.session, token.expiresAt, token.principal);
          const ttlMs = Math.max(1000, token.expiresAt - deps.clock.now());
          const now = deps.clock.now();
          await deps.sessions.putCall(
            { call_id: callId, server: request.server, tenant, principal: token.principal, session: token.session, tool: request.tool, lease_ids: leaseIds, max_records: toolPolicy.max_records, started_at: now, expires_at: now + ttlMs, ...(spend ? { spend } : {}) },
            ttlMs,
          );
          callOpened = true;
        });
        // The final check, however long the upstream took: the local revocation view (no I/O; scaled out,
        // the mirror the feed keeps current) and any kill that reached this call. From `commit` on, a kill
        // waits for this allow to be durable instead, so its record follows this one in the stream.
        await assertNotRevoked(token);
        const lateKill = inFlightCall.commit();
        if (lateKill) throw new BrokerError(lateKill, killMessage(lateKill));
        const allowed = writeRecord('allow', { credential_ref: `${credential.source}:${credential.ref}`, lease_id: credential.lease_id });
        if (intent) {
          // Answered on the durable intent; a kill that reached `commit` waits for this record instead.
          outcomeWritten = allowed.then(
            () => undefined,
            (err: unknown) => deps.onOutcomeUnrecorded?.(tenant, callId, err),
          );
        } else {
          await allowed;
        }
      } catch (err) {
        const killed = isBrokerError(err) && isKill(err.reason);
        // A refused call leaves nothing behind: no open call (its id is free for the retry, and
        // /v1/complete finds nothing to complete) and no lease (the caller never saw this credential).
        if (callOpened) await deps.sessions.takeCall(callId, request.server).catch(() => undefined);
        let revoked = 0;
        for (const lease of leaseIds) await deps.credentials.revokeLease(tenant, lease).then(() => revoked++, () => undefined);
        if (killed) deps.onKilledInFlight?.(revoked);
        throw err;
      }

      return {
        decision: 'allow',
        call_id: callId,
        tenant,
        principal: token.principal,
        session: token.session,
        tool: request.tool,
        arguments: effective,
        credential,
        expires_at: new Date(token.expiresAt).toISOString(),
      };
    } catch (err) {
      if (slotHeld) await deps.quotas.releaseSlot(tenant, callId).catch(() => undefined);
      await deps.spending?.refund(spend);
      const reason = isBrokerError(err) ? err.reason : 'state_unavailable';
      // A deny is recorded in the tenant's stream when possible, but a failing audit never turns it into an allow.
      // Past the tenant's audited-deny budget it is counted into the interval's summary instead (deny-budget.ts).
      if (intent) await deps.audit.append(tenant, { ...event('deny', {}), reason }).catch(() => undefined);
      else if (reason !== 'audit_unavailable') await deps.denies.record(tenant, { ...event('deny', {}), reason });
      throw err;
    } finally {
      if (outcomeWritten) void outcomeWritten.then(() => inFlightCall.leave());
      else inFlightCall.leave();
    }
  }

  return {
    async authorize(request) {
      try {
        const allowed = await authorize(request);
        deps.onDecision?.('allow', 'allow');
        return allowed;
      } catch (err) {
        deps.onDecision?.('deny', isBrokerError(err) ? err.reason : 'state_unavailable');
        throw err;
      }
    },
    verifyLive,
  };
}

const KILL_REASONS: ReadonlySet<Reason> = new Set(['tenant_revoked', 'principal_revoked', 'session_revoked', 'token_revoked', 'session_quarantined']);
const isKill = (reason: Reason) => KILL_REASONS.has(reason);

function killMessage(reason: Reason): string {
  return reason === 'session_quarantined' ? 'this session was quarantined while the call was being authorized' : `${revocationMessage(reason)} while the call was being authorized`;
}

function revocationMessage(reason: Reason): string {
  switch (reason) {
    case 'tenant_revoked':
      return 'this tenant has been revoked';
    case 'principal_revoked':
      return 'this principal has been revoked';
    case 'session_revoked':
      return 'this session has been revoked';
    default:
      return 'this token has been revoked';
  }
}
