import { BackendError } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';
import type { LoginContext } from '../types.js';

/**
 * Whether a backend accepts pipelined commands (RFC 2449 §6.6 PIPELINING), learnt with one
 * CAPA per backend address and kept for a while. A client may only pipeline to a server that
 * advertises it; asking once lets every later login send USER and PASS in one segment, which
 * saves a round trip and a write on both sides of the backend connection.
 */
const cache = new Map<string, { pipelining: boolean; until: number }>();

/** How long a backend's answer is trusted before the next login asks again. */
const CAPABILITY_TTL_MS = 5 * 60_000;
/** A CAPA list longer than this is not a POP3 server we understand. */
const MAX_CAPA_LINES = 64;

/** True when `address`'s last known CAPA listed PIPELINING; asks (on this connection) when unknown. */
export async function backendPipelines(backend: LineChannel, address: string, ctx: LoginContext): Promise<boolean> {
  const known = cache.get(address);
  if (known && known.until > Date.now()) return known.pipelining;
  const pipelining = await askCapa(backend, ctx);
  if (cache.size > 10_000) cache.clear(); // bounded: one entry per configured backend in practice
  cache.set(address, { pipelining, until: Date.now() + CAPABILITY_TTL_MS });
  return pipelining;
}

async function askCapa(backend: LineChannel, ctx: LoginContext): Promise<boolean> {
  backend.writeLine('CAPA');
  const timeoutMs = ctx.limits.backendReplyTimeoutMs;
  const first = await backend.next({ timeoutMs });
  if (first.kind !== 'line' || !first.line.startsWith('+OK')) return false;
  let pipelining = false;
  for (let i = 0; i < MAX_CAPA_LINES; i++) {
    const event = await backend.next({ timeoutMs });
    if (event.kind !== 'line') continue;
    if (event.line === '.') return pipelining;
    if (event.line.toUpperCase() === 'PIPELINING') pipelining = true;
  }
  // Unread capability lines would be taken for the replies to USER and PASS: give up on it.
  throw new BackendError('BACKEND_PROTOCOL', `CAPA list longer than ${MAX_CAPA_LINES} lines`);
}

/** Forgets what was learnt (tests). A reload does not: entries expire after CAPABILITY_TTL_MS. */
export function forgetBackendCapabilities(): void {
  cache.clear();
}
