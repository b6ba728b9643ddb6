import { callBroker } from './http-client';
import { help, OPERATOR_AUTH, operatorOptions, operatorToken, print } from './operator';
import { parseVerb } from './options';
import { UsageError } from './usage-error';

export const APPROVALS_HELP = `Usage: bulkhead approvals list --tenant T
       bulkhead approvals show ID --tenant T
       bulkhead approvals approve ID [--reason TEXT]
       bulkhead approvals deny ID [--reason TEXT]

Human approval of tool calls that need one (tools.<tool>.approval in the policy).
  list      the tenant's pending approvals, oldest first (at most 1000), as JSON: id, tenant,
            principal, session, tool, arguments (the effective arguments the call would run with),
            arguments_mac (HMAC-SHA256 under the tenant's own argument key), created_at, expires_at
  show      one pending approval, as JSON (the same fields)
  approve   lets that exact call (same session, tool and arguments) through once
  deny      refuses it; the call asks for a new approval if it is tried again
  --reason  why (at most 500 characters): kept with the decision in the tenant's audit stream
Exit code 1 when the broker refuses (an unknown tenant, or an approval that is unknown, expired or
already decided).
The arguments are kept sealed under the tenant's key only while the approval is pending, and shown
only to operators: \`arguments\` is null (with \`arguments_unavailable\` saying why) when the tenant's
key cannot open them. Treat the output like the data it is.

${OPERATOR_AUTH}`;

export async function approvals(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') return help(APPROVALS_HELP);
  if (action === undefined) {
    help(APPROVALS_HELP);
    return 2;
  }
  if (action === 'list') return list(rest);
  if (action === 'show') return show(rest);
  if (action === 'approve' || action === 'deny') return decide(action, rest);
  throw new UsageError(`bulkhead approvals: unknown action "${action}" (see bulkhead approvals --help)`);
}

async function list(argv: string[]): Promise<number> {
  const { values } = parseVerb('approvals list', argv, { ...operatorOptions, tenant: { type: 'string' } });
  if (values.help) return help(APPROVALS_HELP);
  if (!values.tenant) throw new UsageError('bulkhead approvals list: --tenant is required');
  const query = new URLSearchParams({ tenant: values.tenant });
  print(await callBroker(values.url, `/v1/approvals?${query}`, { method: 'GET', bearer: operatorToken(values) }));
  return 0;
}

async function show(argv: string[]): Promise<number> {
  const [id, ...rest] = argv;
  if (id === '--help' || id === '-h') return help(APPROVALS_HELP);
  if (id === undefined || id.startsWith('-')) throw new UsageError('bulkhead approvals show: give the approval ID first (bulkhead approvals show ID --tenant T)');
  const { values } = parseVerb('approvals show', rest, { ...operatorOptions, tenant: { type: 'string' } });
  if (values.help) return help(APPROVALS_HELP);
  if (!values.tenant) throw new UsageError('bulkhead approvals show: --tenant is required');
  const answer = (await callBroker(values.url, `/v1/approvals?${new URLSearchParams({ tenant: values.tenant })}`, { method: 'GET', bearer: operatorToken(values) })) as { approvals: Array<{ id: string }> };
  const approval = answer.approvals.find((a) => a.id === id);
  if (!approval) throw new Error(`no pending approval "${id}" in tenant "${values.tenant}" (unknown, expired or already decided)`);
  print(approval);
  return 0;
}

async function decide(action: 'approve' | 'deny', argv: string[]): Promise<number> {
  // The id comes first, as a word of its own: `approvals approve ID [--url URL]`.
  const [id, ...rest] = argv;
  if (id === '--help' || id === '-h') return help(APPROVALS_HELP);
  if (id === undefined || id.startsWith('-')) throw new UsageError(`bulkhead approvals ${action}: give the approval ID first (bulkhead approvals ${action} ID)`);
  // "." and ".." would be resolved away as path segments and send the request somewhere else.
  if (/^\.+$/.test(id)) throw new UsageError(`bulkhead approvals ${action}: "${id}" is not an approval ID`);
  const { values } = parseVerb(`approvals ${action}`, rest, { ...operatorOptions, reason: { type: 'string' } });
  if (values.help) return help(APPROVALS_HELP);
  const path = `/v1/approvals/${encodeURIComponent(id)}/${action}`;
  print(await callBroker(values.url, path, { method: 'POST', body: values.reason ? { reason: values.reason } : {}, bearer: operatorToken(values) }));
  return 0;
}
