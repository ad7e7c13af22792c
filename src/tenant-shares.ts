/** One tenant's part of a session's client bytes. */
export interface TenantBytes {
  bytesUp: number;
  bytesDown: number;
}

/**
 * How a session that serves several tenants one after the other (SMTP mx: one transaction per
 * tenant) splits its client bytes. The session's socket counters are read only at checkpoints
 * (`settle`, at the end of each transaction), never per chunk: the bytes since the last
 * checkpoint go to the tenant the session names at the next one, so a transaction's MAIL and
 * RCPT, read before its tenant was known, count for that tenant.
 */
export class TenantShares {
  private readonly shares = new Map<string, TenantBytes>();
  private markUp = 0;
  private markDown = 0;

  /**
   * The bytes moved since the last checkpoint (`up`, `down`: the session's totals now) belong to
   * `tenant`. With no tenant yet they stay pending, for the first tenant named.
   */
  settle(tenant: string | undefined, up: number, down: number): void {
    if (tenant === undefined) return;
    let share = this.shares.get(tenant);
    if (!share) this.shares.set(tenant, (share = { bytesUp: 0, bytesDown: 0 }));
    share.bytesUp += up - this.markUp;
    share.bytesDown += down - this.markDown;
    this.markUp = up;
    this.markDown = down;
  }

  /** At close: the rest goes to `tenant`; the shares then add up to the totals. Undefined when no tenant was named. */
  close(tenant: string | undefined, up: number, down: number): ReadonlyMap<string, TenantBytes> | undefined {
    this.settle(tenant, up, down);
    return this.shares.size > 0 ? this.shares : undefined;
  }
}

/** The per-tenant parts of a closed session: its breakdown when it served several tenants, else all to its one tenant. */
export function tenantParts(outcome: { readonly tenant: string | undefined; readonly bytesUp: number; readonly bytesDown: number; readonly byTenant?: ReadonlyMap<string, TenantBytes> }): Iterable<readonly [string, TenantBytes]> {
  if (outcome.byTenant) return outcome.byTenant;
  return outcome.tenant === undefined ? [] : [[outcome.tenant, outcome]];
}
