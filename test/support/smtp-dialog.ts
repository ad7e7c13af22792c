import assert from 'node:assert/strict';
import { RawClient } from './raw-client.js';

/** Reads one SMTP reply, multi-line included, its lines joined by "\n". */
export async function smtpReply(c: RawClient): Promise<string> {
  const lines: string[] = [];
  for (;;) {
    const line = await c.line();
    lines.push(line);
    if (!/^\d{3}-/.test(line)) return lines.join('\n');
  }
}

/** Sends one command (a string goes as UTF-8 octets) and returns its whole reply. */
export async function say(c: RawClient, line: string | Buffer): Promise<string> {
  c.send(Buffer.concat([typeof line === 'string' ? Buffer.from(line, 'utf8') : line, Buffer.from('\r\n')]));
  return smtpReply(c);
}

/** The AUTH PLAIN response (RFC 4616) for a user and password. */
export function plainResponse(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`).toString('base64');
}

/** Connects, checks the 220 and says EHLO: the client and the EHLO reply. */
export async function greeted(port: number, helo = 'client.example'): Promise<{ c: RawClient; ehlo: string }> {
  const c = await RawClient.connect(port);
  assert.match(await c.line(), /^220 /);
  return { c, ehlo: await say(c, `EHLO ${helo}`) };
}
