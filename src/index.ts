/**
 * `require('bulkhead')`: the broker as a library. `createBroker` is the composition root `bulkhead serve`
 * uses (src/app.ts); the policy loader and the error type are what an embedder needs around it. The MCP
 * side is `bulkhead/mcp` (src/mcp/index.ts).
 */
export { createBroker, type Broker, type BrokerOptions } from './app';
export { loadPolicyFile, parsePolicy, PolicyError } from './policy/load';
export type { Policy } from './policy/schema';
export { BrokerError, isBrokerError, type Reason } from './errors';
