/**
 * Sessions open per tenant in this process, over all its listeners and protocols: the tenant's
 * `maxConnections` (or the listener's `maxConnectionsPerTenant`) caps them. A session takes a
 * slot once its login names the tenant, and gives it back when it closes or moves to another tenant.
 */
export class TenantConnections {
  private readonly open = new Map<string, number>();

  /** Takes a slot of `tenant` unless `max` are taken (no `max`: always). */
  acquire(tenant: string, max: number | undefined): boolean {
    const now = this.open.get(tenant) ?? 0;
    if (max !== undefined && now >= max) return false;
    this.open.set(tenant, now + 1);
    return true;
  }

  release(tenant: string): void {
    const left = (this.open.get(tenant) ?? 1) - 1;
    if (left > 0) this.open.set(tenant, left);
    else this.open.delete(tenant);
  }

  /** Sessions holding a slot of `tenant` now. */
  count(tenant: string): number {
    return this.open.get(tenant) ?? 0;
  }
}
