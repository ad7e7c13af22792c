/**
 * The benchmark's mail: users u1..uN@bench.test (password pw-uK) with SMALL_MESSAGES small
 * messages each, and bulk@bench.test (pw-bulk) holding one big message. Messages are stored
 * with CRLF line ends, so what a backend sends for RETR is the file, dot-stuffed, plus ".\r\n".
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const DOMAIN = 'bench.test';
export const SMALL_MESSAGES = 10;

export interface Account {
  /** Full login name, e.g. u1@bench.test (sent as is by the client, direct and through Concierge). */
  readonly login: string;
  /** Local part, e.g. u1. */
  readonly local: string;
  readonly password: string;
}

export function loginAccounts(count: number): Account[] {
  return Array.from({ length: count }, (_, i) => account(`u${i + 1}`));
}

export const bulkAccount: Account = account('bulk');

function account(local: string): Account {
  return { login: `${local}@${DOMAIN}`, local, password: `pw-${local}` };
}

/** A small message, ~3.5 KiB like the team harness's: headers and 40 body lines. */
export function smallMessage(user: string, n: number): Buffer {
  const lines = [
    'Return-Path: <sender@bench.test>',
    'From: Sender <sender@bench.test>',
    `To: ${user}`,
    `Subject: small message ${n}`,
    'Date: Mon, 01 Jan 2024 00:00:00 +0000',
    `Message-ID: <small-${n}-${user}>`,
    '',
  ];
  for (let i = 1; i <= 40; i++) lines.push(`Line ${String(i).padStart(2, '0')} of a small benchmark message. Lorem ipsum dolor sit amet, consectetur.`);
  return Buffer.from(lines.join('\r\n') + '\r\n', 'latin1');
}

/** The big message as stored, and what a correct RETR delivers. */
export interface BigMessage {
  readonly bytes: Buffer;
  /** SHA-256 (hex) of the stored message = the un-dot-stuffed RETR body. */
  readonly sha256: string;
  /** Octets of the RETR response body on the wire: dot-stuffed message plus ".\r\n". */
  readonly wireOctets: number;
  /** Lines that start with '.', which the server must dot-stuff. */
  readonly dotLines: number;
}

/**
 * ~`mib` MiB: headers, then base64 text lines (76 columns) with, every 500th line, a line that
 * starts with '.' (a lone ".", "..", and ".text"), so dot-stuffing is exercised both ways.
 */
export function bigMessage(mib: number): BigMessage {
  const target = Math.max(1, Math.round(mib * 1024 * 1024));
  const header = Buffer.from(
    [
      'Return-Path: <sender@bench.test>',
      'From: Sender <sender@bench.test>',
      `To: ${bulkAccount.login}`,
      'Subject: big message',
      'Date: Mon, 01 Jan 2024 00:00:00 +0000',
      'Message-ID: <big@bench.test>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
  const out = Buffer.alloc(target);
  let at = header.copy(out, 0);
  // 57 random bytes -> 76 base64 characters per line, like `base64 -w 76`.
  const random = randomBytes(Math.ceil(((target - at) / 78) * 57) + 57).toString('base64');
  const dotted = ['.', '..', '.a line that starts with a dot', '..two dots', '. dot space'];
  let line = 0;
  let dotLines = 0;
  let r = 0;
  while (at < target) {
    line++;
    let text: string;
    if (line % 500 === 0) {
      text = dotted[(line / 500) % dotted.length]!;
      dotLines++;
    } else {
      text = random.slice(r, r + 76);
      r += 76;
      if (text.length < 76) text = text.padEnd(76, 'A');
    }
    const room = target - at - 2;
    if (room < text.length) {
      // Last line: fill exactly, never leaving a lone '.' or an empty line as a surprise.
      text = 'Z'.repeat(Math.max(0, room));
    }
    at += out.write(text, at, 'latin1');
    at += out.write('\r\n', at, 'latin1');
  }
  const bytes = at === target ? out : out.subarray(0, at);
  return {
    bytes,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    wireOctets: bytes.length + dotLines + 3,
    dotLines,
  };
}

/**
 * Maildir file names like dovecot's own deliveries: ",S=<size>,W=<wire size>" lets dovecot
 * answer STAT/LIST without reading the files. The files are CRLF already, so W = S.
 */
export function maildirFileName(n: number, size: number): string {
  return `${1_700_000_000 + n}.M${n}P1.bench,S=${size},W=${size}:2,S`;
}

/** Reverses dot-stuffing of a RETR body (terminator already removed). */
export function unstuff(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let from = 0;
  // A line start is offset 0 or right after CRLF; a stuffed line starts with "..".
  if (body[0] === 0x2e) from = 1;
  for (let i = body.indexOf('\r\n.', 0, 'latin1'); i >= 0; i = body.indexOf('\r\n.', i + 3, 'latin1')) {
    parts.push(body.subarray(from, i + 2));
    from = i + 3;
  }
  parts.push(body.subarray(from));
  return Buffer.concat(parts);
}

/** Writes one Maildir `cur/` folder with the given messages, in POP3 order. */
export async function writeMessages(curDir: string, messages: readonly Buffer[]): Promise<void> {
  await mkdir(curDir, { recursive: true });
  for (const [i, m] of messages.entries()) await writeFile(path.join(curDir, maildirFileName(i + 1, m.length)), m);
}

