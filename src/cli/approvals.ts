import { callBroker } from './http-client';
import { help, OPERATOR_AUTH, operatorOptions, operatorToken, print } from './operator';
import { parseVerb } from './options';
import { UsageError } from './usage-error';

export const APPROVALS_HELP = `Usage: bulkhead approvals list --tenant T
       bulkhead approvals approve ID
       bulkhead approvals deny ID

Human approval of tool calls that need one (tools.<tool>.approval in the policy).
  list      the tenant's pending approvals, oldest first (at most 1000): id, principal, session, tool,
            arguments_sha256, created_at, expires_at. Arguments are never stored, only their hash.
  approve   lets that exact call (same session, tool and arguments) through once
  deny      refuses it; the call asks for a new approval if it is tried again
Exit code 1 when the broker refuses (an unknown tenant, or an approval that is unknown, expired or
already decided).

${OPERATOR_AUTH}`;

export async function approvals(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === '--help' || action === '-h') return help(APPROVALS_HELP);
  if (action === undefined) {
    help(APPROVALS_HELP);
    return 2;
  }
  if (action === 'list') return list(rest);
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

async function decide(action: 'approve' | 'deny', argv: string[]): Promise<number> {
  // The id comes first, as a word of its own: `approvals approve ID [--url URL]`.
  const [id, ...rest] = argv;
  if (id === '--help' || id === '-h') return help(APPROVALS_HELP);
  if (id === undefined || id.startsWith('-')) throw new UsageError(`bulkhead approvals ${action}: give the approval ID first (bulkhead approvals ${action} ID)`);
  // "." and ".." would be resolved away as path segments and send the request somewhere else.
  if (/^\.+$/.test(id)) throw new UsageError(`bulkhead approvals ${action}: "${id}" is not an approval ID`);
  const { values } = parseVerb(`approvals ${action}`, rest, operatorOptions);
  if (values.help) return help(APPROVALS_HELP);
  const path = `/v1/approvals/${encodeURIComponent(id)}/${action}`;
  print(await callBroker(values.url, path, { method: 'POST', body: {}, bearer: operatorToken(values) }));
  return 0;
}
