/**
 * `bulkhead`: the broker as a library, for running it inside your own process (what `bulkhead serve`
 * does: load a policy, create the broker, listen). The MCP server side is `bulkhead/mcp` (SDK 1.x) and
 * `bulkhead/mcp/v2` (SDK 2.x); see docs/mcp.md.
 *
 *   import { createBroker, loadPolicyFile } from 'bulkhead';
 *   const broker = await createBroker({ policy: loadPolicyFile('bulkhead.yaml'), dataDir: '/var/lib/bulkhead' });
 *   await broker.listen(8700, '127.0.0.1');            // and/or broker.listenSocket('/run/bulkhead/broker.sock')
 *   process.once('SIGTERM', () => void broker.close());
 */
export { createBroker, type Broker, type BrokerOptions } from './app';
export { loadPolicyFile, parsePolicy, PolicyError } from './policy/load';
export type { Policy, TenantPolicy, ToolPolicy, CredentialSpec, ServerPolicy, BrokerSettings } from './policy/schema';
export { BrokerError, isBrokerError, isDenyReason, DENY_REASONS, type DenyReason, type OtherReason, type Reason } from './errors';
export { brokerAddress, type BrokerAddress } from './net/broker-address';
