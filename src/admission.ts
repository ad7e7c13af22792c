import { BlockList, isIP } from 'node:net';
import type { Limits } from './config.js';
import type { RefusalLimit } from './metrics.js';

/** A BlockList of "10.0.0.0/8", "2001:db8::/32" or single addresses (validated by the config schema). */
export function blockListOf(blocks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const block of blocks) {
    const [address = '', prefix] = block.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

/**
 * Connections accepted per address over the last second, estimated as HAProxy does: this
 * second's count plus the previous second's, weighted by how much of it is still inside the
 * window. Two maps, swapped each second, so an address that stops connecting is forgotten.
 */
class RateWindow {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private start: number;

  constructor(private readonly now: () => number) {
    this.start = now();
  }

  private roll(): number {
    const t = this.now();
    if (t - this.start >= 2_000) {
      this.previous = new Map();
      this.current = new Map();
      this.start = t;
    } else if (t - this.start >= 1_000) {
      this.previous = this.current;
      this.current = new Map();
      this.start += 1_000;
    }
    return t;
  }

  rate(address: string): number {
    const t = this.roll();
    const weight = 1 - (t - this.start) / 1_000;
    return (this.current.get(address) ?? 0) + (this.previous.get(address) ?? 0) * weight;
  }

  add(address: string): void {
    this.current.set(address, (this.current.get(address) ?? 0) + 1);
  }
}

/**
 * A listener's connection limits, checked at accept before any session exists: address lists
 * first, then the listener's and the address's concurrent sessions, then the address's rate.
 * Only admitted connections count toward the rate (xinetd's cps counts what it serves).
 */
export class Admission {
  private readonly allow: BlockList | undefined;
  private readonly deny: BlockList | undefined;
  private readonly rates: RateWindow | undefined;
  private readonly perIp = new Map<string, number>();
  private open = 0;

  constructor(
    private readonly limits: Pick<Limits, 'maxConnections' | 'maxConnectionsPerIp' | 'connectionRatePerIp' | 'allowFrom' | 'denyFrom'>,
    now: () => number = Date.now,
  ) {
    this.allow = limits.allowFrom && blockListOf(limits.allowFrom);
    this.deny = limits.denyFrom && blockListOf(limits.denyFrom);
    this.rates = limits.connectionRatePerIp === undefined ? undefined : new RateWindow(now);
    this.active = limits.maxConnections !== undefined || limits.maxConnectionsPerIp !== undefined || this.allow !== undefined || this.deny !== undefined || this.rates !== undefined;
  }

  /** Whether any limit is set at all (a listener without any skips the bookkeeping). */
  readonly active: boolean;

  /**
   * The limit that refuses `address` (unmapped), or undefined: then the connection is counted
   * and `release(address)` must follow when its session is done.
   */
  admit(address: string): RefusalLimit | undefined {
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (this.deny?.check(address, type)) return 'denyFrom';
    if (this.allow && !this.allow.check(address, type)) return 'allowFrom';
    const { maxConnections, maxConnectionsPerIp, connectionRatePerIp } = this.limits;
    if (maxConnections !== undefined && this.open >= maxConnections) return 'maxConnections';
    const fromAddress = this.perIp.get(address) ?? 0;
    if (maxConnectionsPerIp !== undefined && fromAddress >= maxConnectionsPerIp) return 'maxConnectionsPerIp';
    if (this.rates && connectionRatePerIp !== undefined) {
      if (this.rates.rate(address) >= connectionRatePerIp) return 'connectionRatePerIp';
      this.rates.add(address);
    }
    this.open++;
    this.perIp.set(address, fromAddress + 1);
    return undefined;
  }

  /** A session admitted for `address` is done. */
  release(address: string): void {
    this.open--;
    const left = (this.perIp.get(address) ?? 1) - 1;
    if (left > 0) this.perIp.set(address, left);
    else this.perIp.delete(address);
  }
}
