import { randomBytes } from 'node:crypto';
import type { ArgumentMacs } from '../argument-keys/argument-macs';
import { open, seal } from '../crypto/envelope';
import type { KeyEncryptionKeys } from '../crypto/key-encryption-key';

/**
 * The effective arguments of a call waiting for approval, so the operator sees what they approve
 * instead of a hash. They are sealed under the tenant's own root: a fresh data key per approval
 * (AES-256-GCM) wrapped by the tenant's key-encryption key (master key, Vault transit or AWS KMS, as
 * the policy names it), bound to the exact call (tenant, session, tool, arguments hash) so a blob moved
 * to another approval or tenant does not open. The approval store keeps the sealed form only while the
 * approval is pending and unexpired; deciding it deletes it. Opened only for the operator API, and
 * checked against the approval's arguments hash, so what is shown is exactly what would be approved.
 * Never logged, never in an audit record, never in an answer to the agent or the MCP server.
 */
export interface ArgumentSeal {
  seal(call: SealedCall, args: Record<string, unknown>): Promise<string>;
  open(call: SealedCall, sealed: string): Promise<Record<string, unknown>>;
}

export interface SealedCall {
  tenant: string;
  session: string;
  tool: string;
  arguments_mac: string;
}

interface SealedForm {
  v: 1;
  /** Which root wrapped the data key ("master", "vault_transit:…", "aws_kms:…"). */
  kek: string;
  key: string;
  body: string;
}

export function createArgumentSeal(keks: KeyEncryptionKeys, macs: Pick<ArgumentMacs, 'mac'>): ArgumentSeal {
  const context = (call: SealedCall) => `approval-arguments:${JSON.stringify([call.tenant, call.session, call.tool, call.arguments_mac])}`;
  return {
    async seal(call, args) {
      const kek = keks(call.tenant);
      const dataKey = randomBytes(32);
      try {
        const form: SealedForm = { v: 1, kek: kek.id, key: await kek.wrap(dataKey, context(call)), body: seal(dataKey, Buffer.from(JSON.stringify(args), 'utf8'), context(call)) };
        return JSON.stringify(form);
      } finally {
        dataKey.fill(0);
      }
    },
    async open(call, sealed) {
      const form = JSON.parse(sealed) as SealedForm;
      const kek = keks(call.tenant);
      if (form.v !== 1 || form.kek !== kek.id) throw new Error(`sealed under ${String(form.kek)}, but the tenant's key is now ${kek.id}`);
      const dataKey = await kek.unwrap(form.key, context(call));
      try {
        const args = JSON.parse(open(dataKey, form.body, context(call)).toString('utf8')) as Record<string, unknown>;
        if ((await macs.mac(call.tenant, args)) !== call.arguments_mac) throw new Error('sealed arguments do not match the approval');
        return args;
      } finally {
        dataKey.fill(0);
      }
    },
  };
}
