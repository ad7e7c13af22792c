/**
 * Dovecot-style authentication penalty per client address: each failed login from an address
 * doubles the delay before its next failure is answered (authFailDelayMs, 2×, 4×, … up to
 * `maxMs`), and the remembered count drops by one for every `decayMs` without a failure.
 *
 * Only the failing session waits (a timer of its own), so the penalty cannot be used to slow
 * anyone else: it is keyed by the failing client's address (the PROXY header's, behind a
 * balancer), and a success from that address clears it.
 */
export class AuthPenalty {
  /** address → failures still remembered and when the last one happened; oldest first (insertion order). */
  private readonly failures = new Map<string, { count: number; at: number }>();

  constructor(
    /** Addresses remembered at most; past it the longest-quiet one is forgotten (a spray of addresses costs bounded memory). */
    private readonly maxAddresses = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Addresses with a penalty now (for the gauge). */
  get size(): number {
    return this.failures.size;
  }

  /** Failures `address` has left on record now, after decay. */
  private remembered(address: string, decayMs: number, t: number): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    const left = entry.count - Math.floor((t - entry.at) / decayMs);
    if (left <= 0) this.failures.delete(address);
    return Math.max(0, left);
  }

  /**
   * Records one failed login from `address` and returns how long after the client's login line
   * it is answered: `baseMs` for the first failure on record, doubling with each further one, at most `maxMs`.
   */
  fail(address: string, limits: { baseMs: number; maxMs: number; decayMs: number }): number {
    const t = this.now();
    const count = this.remembered(address, limits.decayMs, t) + 1;
    this.failures.delete(address); // re-inserted last: the map stays ordered by last failure
    this.failures.set(address, { count, at: t });
    if (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
    // 2 ** 31 is past any cap; the exponent is bounded so the product stays a finite number.
    return Math.min(limits.baseMs * 2 ** Math.min(count - 1, 31), Math.max(limits.baseMs, limits.maxMs));
  }

  /** A login from `address` succeeded: whoever types the right password is not a guesser. */
  succeed(address: string): void {
    this.failures.delete(address);
  }
}
