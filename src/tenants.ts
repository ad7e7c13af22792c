import type { Backend, Config, TenantConfig } from './config.js';
import { parseLogin } from './login.js';

export type Protocol = keyof TenantConfig['backends'];

/** A resolved routing decision: who the login belongs to and where it goes. */
export interface Route {
  readonly tenant: TenantConfig;
  /** How the tenant was found. */
  readonly matchedBy: 'domain' | 'alias' | 'localAddress' | 'sni';
  readonly backends: readonly Backend[];
  /** The user name the backend is sent, per the tenant's `backendUser`. */
  readonly backendUser: string;
}

/** Maps logins to tenants: by domain, alias, or the local address the client dialled. */
export class TenantDirectory {
  private readonly byName = new Map<string, { tenant: TenantConfig; alias: boolean }>();
  private readonly byLocalAddress = new Map<string, TenantConfig>();

  constructor(private readonly config: Config) {
    for (const tenant of config.tenants) {
      this.byName.set(tenant.domain, { tenant, alias: false });
      for (const alias of tenant.aliases) this.byName.set(alias, { tenant, alias: true });
      for (const address of tenant.localAddresses) this.byLocalAddress.set(address, tenant);
    }
  }

  get separators(): readonly string[] {
    return this.config.login.separators;
  }

  /**
   * Resolves `loginName` (e.g. `alice@a.example`, or `alice` dialled on a tenant's local address).
   * Undefined when no tenant hosts it or the tenant has no backend for the protocol:
   * callers must answer that exactly like a wrong password. `localAddress` may be a function,
   * called only for a login without a domain (reading a socket's local address is a system call).
   */
  resolve(loginName: string, protocol: Protocol, localAddress?: string | (() => string | undefined), sniTenant?: string): Route | undefined {
    const decision = this.explain(loginName, protocol, localAddress, sniTenant);
    return 'route' in decision ? decision.route : undefined;
  }

  /** The routing decision with the reason when there is no route (for `concierge route` and logs). */
  explain(loginName: string, protocol: Protocol, localAddressOf?: string | (() => string | undefined), sniTenant?: string): { route: Route } | { reason: string } {
    const name = parseLogin(loginName, this.separators);
    if (!name) return { reason: 'not a valid login name' };
    let tenant: TenantConfig | undefined;
    let matchedBy: Route['matchedBy'];
    if (name.domain !== undefined) {
      const hit = this.byName.get(name.domain);
      if (!hit) return { reason: `no tenant has the domain or alias "${name.domain}"` };
      tenant = hit.tenant;
      matchedBy = hit.alias ? 'alias' : 'domain';
    } else if (sniTenant !== undefined && this.byName.has(sniTenant)) {
      // The TLS server name named the tenant: a bare user name is that tenant's.
      tenant = this.byName.get(sniTenant)!.tenant;
      matchedBy = 'sni';
    } else {
      const localAddress = typeof localAddressOf === 'function' ? localAddressOf() : localAddressOf;
      tenant = localAddress === undefined ? undefined : this.byLocalAddress.get(unmapIPv4(localAddress));
      if (!tenant) return { reason: `no domain in the login and no tenant has the local address ${localAddress ?? '(none given)'}` };
      matchedBy = 'localAddress';
    }
    if (tenant.backends[protocol].length === 0) return { reason: `tenant ${tenant.domain} has no ${protocol} backend` };
    const backendUser = tenant.backendUser === 'full' ? `${name.user}@${tenant.domain}` : name.user;
    return { route: { tenant, matchedBy, backends: tenant.backends[protocol], backendUser } };
  }
}

/** `::ffff:192.0.2.10` (a dual-stack listener's view of an IPv4 peer) → `192.0.2.10`. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
