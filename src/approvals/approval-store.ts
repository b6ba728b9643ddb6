/** Human approval of one exact call: same tenant, session, tool and arguments hash, used at most once. */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'used';

export interface Approval {
  id: string;
  tenant: string;
  principal: string;
  session: string;
  tool: string;
  arguments_mac: string;
  status: ApprovalStatus;
  /** Epoch ms. */
  created_at: number;
  expires_at: number;
  decided_by?: string;
}

/** The most approvals `listPending` returns: an operator's view, not an export. */
export const MAX_LISTED_APPROVALS = 1000;

export interface ApprovalStore {
  /**
   * Returns the existing pending/approved approval for this exact call, or creates a pending one.
   * `sealed_arguments` (sealed-arguments.ts) is kept with a new approval only, until it is decided or expires.
   */
  request(input: Omit<Approval, 'id' | 'status' | 'created_at' | 'decided_by'> & { sealed_arguments?: string }, now: number): Promise<Approval>;
  get(id: string): Promise<Approval | null>;
  /** The sealed effective arguments of a pending, unexpired approval; null once it is decided or expired (they are deleted then). */
  sealedArguments(id: string, now: number): Promise<string | null>;
  /** pending → approved | denied (deleting its sealed arguments). Returns null if unknown, expired or already decided. */
  decide(id: string, decision: 'approved' | 'denied', operator: string, now: number): Promise<Approval | null>;
  /** approved → used, atomically, for this exact call. Returns the approval if it was consumed. */
  consume(tenant: string, session: string, tool: string, argumentsMac: string, now: number): Promise<Approval | null>;
  /** This tenant's pending, unexpired approvals, oldest first, at most MAX_LISTED_APPROVALS. */
  listPending(tenant: string, now: number): Promise<Approval[]>;
  /** Every approval of the tenant still held, whatever its status, oldest first (a tenant export). */
  listTenant(tenant: string): Promise<Approval[]>;
  /** Deletes every approval of the tenant, whatever its status, and its indexes (tenant delete). Idempotent. */
  forgetTenant(tenant: string): Promise<void>;
  close?(): Promise<void>;
}
