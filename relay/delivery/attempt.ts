import type { SmtpReply } from '../../proxies/smtp/reply-reader.js';
import type { SenderIdentity } from '../senders.js';
import type { QueuedMessage, QueuedRecipient } from '../spool.js';
import { type Destination, routeDomain } from './destinations.js';
import type { ConnectionPool } from './pool.js';
import { ServerReplyError } from './smtp-client.js';

/** What one delivery attempt needs besides the message. */
export interface AttemptDeps {
  readonly pool: ConnectionPool;
  readonly transports: Readonly<Record<string, string>>;
  /** Called as soon as a server took recipients: the queue must know before anything else happens. */
  checkpoint(message: QueuedMessage): Promise<void>;
}

function needsUtf8(from: string, recipients: readonly QueuedRecipient[]): boolean {
  const nonAscii = /[^\x00-\x7f]/;
  return nonAscii.test(from) || recipients.some((r) => nonAscii.test(r.address));
}

/** RFC 3463 status of a reply: its enhanced code when given, else its class. */
function statusOf(reply: SmtpReply): string {
  const m = /^([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply.lines[0] ?? '');
  return m ? m[1]! : `${Math.floor(reply.code / 100)}.0.0`;
}

function diagnosticOf(reply: SmtpReply): string {
  return `${reply.code} ${reply.lines.join(' ')}`.slice(0, 500);
}

function mark(r: QueuedRecipient, reply: SmtpReply, server: string): void {
  r.status = statusOf(reply);
  r.diagnostic = diagnosticOf(reply);
  r.remoteMta = server;
  if (reply.code >= 500) r.state = 'failed';
}

function defer(recipients: readonly QueuedRecipient[], status: string, diagnostic: string): void {
  for (const r of recipients) {
    r.status = status;
    r.diagnostic = diagnostic.slice(0, 500);
  }
}

/**
 * Tries each recipient domain of `message` once: its servers in order until one answers. Recipient
 * states are updated in place (delivered, failed, or still pending with the reason).
 */
export async function attemptDelivery(message: QueuedMessage, body: Buffer, identity: SenderIdentity, deps: AttemptDeps): Promise<void> {
  const byDomain = new Map<string, QueuedRecipient[]>();
  for (const r of message.recipients) {
    if (r.state !== 'pending') continue;
    const domain = r.address.slice(r.address.lastIndexOf('@') + 1).toLowerCase();
    let list = byDomain.get(domain);
    if (!list) byDomain.set(domain, (list = []));
    list.push(r);
  }
  // One domain after the other: each success is checkpointed before the next begins.
  for (const [domain, recipients] of byDomain) await deliverToDomain(message, body, identity, domain, recipients, deps);
}

async function deliverToDomain(message: QueuedMessage, body: Buffer, identity: SenderIdentity, domain: string, recipients: QueuedRecipient[], deps: AttemptDeps): Promise<void> {
  const route = await routeDomain(domain, deps.transports);
  if (route.kind !== 'servers') {
    defer(recipients, route.status, route.reason);
    if (route.kind === 'permanent') for (const r of recipients) r.state = 'failed';
    return;
  }
  for (const server of route.servers) {
    const outcome = await tryServer(message, body, identity, server, recipients, deps);
    if (outcome === 'answered') return;
  }
}

/** One server: 'answered' when it gave replies (final for this attempt), 'unreachable' to try the next. */
async function tryServer(message: QueuedMessage, body: Buffer, identity: SenderIdentity, server: Destination, recipients: QueuedRecipient[], deps: AttemptDeps): Promise<'answered' | 'unreachable'> {
  const name = `${server.host}:${server.port}`;
  // A reused connection the server has meanwhile closed earns one fresh dial, unless data went out.
  for (let tries = 0; tries < 2; tries++) {
    let connection;
    try {
      connection = await deps.pool.acquire(server, identity);
    } catch (err) {
      const reply = err instanceof ServerReplyError ? err.reply : undefined;
      // A bind failure lands here too: deferred, never sent from another address.
      defer(recipients, '4.4.1', `${name}: ${reply ? diagnosticOf(reply) : (err as Error).message}`);
      return 'unreachable';
    }
    const reused = connection.messagesSent > 0;
    // RFC 6531 §3.4: UTF-8 addresses cannot go to a server without SMTPUTF8 (no downgrade here).
    if (message.smtputf8 && !connection.extensions.has('SMTPUTF8') && needsUtf8(message.from, recipients)) {
      deps.pool.release(connection);
      for (const r of recipients) Object.assign(r, { state: 'failed', status: '5.6.7', diagnostic: `${name} does not offer SMTPUTF8, needed for a UTF-8 address`, remoteMta: name });
      return 'answered';
    }
    try {
      const replies = await connection.send({ from: message.from, recipients: recipients.map((r) => r.address), size: message.size, eightBit: message.eightBit, smtputf8: message.smtputf8 ?? false }, body);
      deps.pool.release(connection);
      if (replies.mail.code >= 300) {
        for (const r of recipients) mark(r, replies.mail, name);
        return 'answered';
      }
      const taken: QueuedRecipient[] = [];
      for (const r of recipients) {
        const reply = replies.recipients.get(r.address)!;
        if (reply.code < 300) taken.push(r);
        else mark(r, reply, name);
      }
      if (replies.data) {
        for (const r of taken) {
          mark(r, replies.data, name);
          if (replies.data.code < 300) r.state = 'delivered';
        }
        if (replies.data.code < 300) await deps.checkpoint(message);
      }
      return 'answered';
    } catch (err) {
      deps.pool.discard(connection);
      const delivered = connection.dataSent;
      defer(recipients, '4.4.2', `${name}: ${(err as Error).message}`);
      if (!reused || delivered) return 'answered';
    }
  }
  return 'answered';
}
