import type { BlockList } from 'node:net';
import { blockListOf } from '../src/admission.js';
import type { Config, TenantConfig } from '../src/config.js';
import { parseLogin } from '../src/login.js';
import { HOST_QUEUE } from './spool.js';

/** Who mail is sent as: the queue it waits in, the address it leaves from, the name in EHLO. */
export interface SenderIdentity {
  /** The tenant's domain, or HOST_QUEUE for the host's own mail. */
  readonly queue: string;
  readonly heloName: string;
  /** Absent: the host has no fixed address (the kernel picks). A tenant always has one when relaying. */
  readonly sourceAddress: string | undefined;
}

/** The relay's view of the tenants: identities by queue, by client address and by domain. */
export class SenderDirectory {
  private readonly byQueue = new Map<string, SenderIdentity>();
  private readonly byDomain = new Map<string, SenderIdentity>();
  private readonly blocks: Array<{ list: BlockList; identity: SenderIdentity }> = [];
  private readonly tenants = new Map<string, TenantConfig>();

  constructor(private readonly config: Config) {
    const host = config.relay?.host;
    if (host) {
      const identity = { queue: HOST_QUEUE, heloName: host.heloName, sourceAddress: host.sourceAddress };
      this.byQueue.set(HOST_QUEUE, identity);
      if (host.relayFrom.length > 0) this.blocks.push({ list: blockListOf(host.relayFrom), identity });
    }
    for (const t of config.tenants) {
      const identity = { queue: t.domain, heloName: t.heloName ?? t.domain, sourceAddress: t.sourceAddress };
      this.byQueue.set(t.domain, identity);
      for (const name of [t.domain, ...t.aliases]) {
        this.byDomain.set(name, identity);
        this.tenants.set(name, t);
      }
      // Tenant blocks first: a tenant's address inside the host's wider block is the tenant's.
      if (t.relayFrom.length > 0) this.blocks.unshift({ list: blockListOf(t.relayFrom), identity });
    }
  }

  /** The identity mail of `queue` is sent with; undefined when the tenant is gone from the config. */
  ofQueue(queue: string): SenderIdentity | undefined {
    return this.byQueue.get(queue);
  }

  /** The tenant (or host) whose `relayFrom` holds `address`. */
  ofClientAddress(address: string): SenderIdentity | undefined {
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    return this.blocks.find((b) => b.list.check(address, family))?.identity;
  }

  /** The tenant that has `domain` as its domain or an alias. */
  ofDomain(domain: string): SenderIdentity | undefined {
    return this.byDomain.get(domain.toLowerCase());
  }

  /**
   * AUTH `loginName` as the tenant's submission backend must be asked (its `backendUser`), with the
   * tenant's identity; undefined when no tenant hosts the login's domain.
   */
  ofLogin(loginName: string): { identity: SenderIdentity; backendUser: string } | undefined {
    const login = parseLogin(loginName, this.config.login.separators);
    const tenant = login?.domain === undefined ? undefined : this.tenants.get(login.domain);
    if (!login || !tenant) return undefined;
    return { identity: this.byQueue.get(tenant.domain)!, backendUser: tenant.backendUser === 'full' ? `${login.user}@${tenant.domain}` : login.user };
  }
}
