import { randomBytes } from 'node:crypto';
import type { QueuedMessage, QueuedRecipient } from './spool.js';

/** Header lines of the returned message kept in the DSN (RFC 3462 text/rfc822-headers). */
const MAX_RETURNED_HEADERS = 64 * 1024;

/** RFC 2822 date with a numeric zone. */
function mailDate(at: number): string {
  return new Date(at).toUTCString().replace('GMT', '+0000');
}

/** The header block of a stored (dot-stuffed) body, un-stuffed, with CRLF line ends. */
export function headersOf(body: Buffer): string {
  const text = body.subarray(0, MAX_RETURNED_HEADERS).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text.slice(0, text.lastIndexOf('\r\n') + 2) : text.slice(0, end + 2);
  return head.replace(/^\./gm, '');
}

/**
 * A delivery status notification (RFC 3464) for the failed recipients of `message`, as a body
 * ready to queue (dot-stuffed, CRLF), sent from the null sender so it can never bounce again.
 */
export function buildDsn(message: QueuedMessage, failed: readonly QueuedRecipient[], originalBody: Buffer, reportingMta: string, now = Date.now()): string {
  const boundary = `dsn-${randomBytes(8).toString('hex')}`;
  const expired = failed.some((r) => r.status?.startsWith('4.'));
  const human = [
    `This is the mail relay at ${reportingMta}.`,
    '',
    expired ? 'Your message could not be delivered in time to the recipients below.' : 'Your message could not be delivered to the recipients below.',
    '',
    ...failed.map((r) => `  <${r.address}>: ${r.diagnostic ?? 'delivery failed'}`),
    '',
    'The headers of your message are attached.',
  ];
  const perMessage = [`Reporting-MTA: dns; ${reportingMta}`, `X-Concierge-Queue-ID: ${message.id}`, `Arrival-Date: ${mailDate(message.receivedAt)}`];
  const perRecipient = failed.map((r) =>
    [
      `Final-Recipient: rfc822; ${r.address}`,
      'Action: failed',
      `Status: ${r.status ?? '5.0.0'}`,
      ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []),
      ...(r.diagnostic ? [`Diagnostic-Code: smtp; ${r.diagnostic.replace(/[\r\n]+/g, ' ')}`] : []),
    ].join('\r\n'),
  );
  const lines = [
    `From: Mail Delivery System <MAILER-DAEMON@${reportingMta}>`,
    `To: <${message.from}>`,
    `Subject: ${expired ? 'Delayed Mail (gave up)' : 'Undelivered Mail Returned to Sender'}`,
    `Date: ${mailDate(now)}`,
    `Message-ID: <${message.id}.dsn.${randomBytes(4).toString('hex')}@${reportingMta}>`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=us-ascii',
    '',
    ...human,
    '',
    `--${boundary}`,
    'Content-Type: message/delivery-status',
    '',
    perMessage.join('\r\n'),
    '',
    perRecipient.join('\r\n\r\n'),
    '',
    `--${boundary}`,
    'Content-Type: text/rfc822-headers',
    '',
    headersOf(originalBody).replace(/\r\n$/, ''),
    '',
    `--${boundary}--`,
    '',
  ];
  // Dot-stuffed as the queue stores bodies (a returned header could start with a dot).
  return lines.join('\r\n').replace(/^\./gm, '..');
}
