/**
 * How long real login failures take, so that a failure Concierge decides alone (an unknown
 * domain) is answered no sooner. A backend with its own failure delay (dovecot waits 2 s)
 * would otherwise make a wrong password slower than an unknown domain, and the difference
 * would tell a client which domains are hosted here.
 */
export class FailureTiming {
  private readonly recent: number[] = [];
  private next = 0;

  /** Keeps the last `size` durations. */
  constructor(private readonly size = 32) {}

  /** A backend refused a login `ms` after the client's credentials arrived. */
  observe(ms: number): void {
    if (this.recent.length < this.size) this.recent.push(ms);
    else this.recent[this.next] = ms;
    this.next = (this.next + 1) % this.size;
  }

  /** The median of the recent backend refusals, 0 before the first. */
  typicalMs(): number {
    if (this.recent.length === 0) return 0;
    const sorted = [...this.recent].sort((a, b) => a - b);
    return sorted[sorted.length >> 1]!;
  }
}
