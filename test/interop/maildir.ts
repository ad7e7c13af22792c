import { chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A message as the test gave it: strings are text (line ends become CRLF), Buffers are written as-is. */
export type MessageInput = Buffer | string;

/** The exact bytes dovecot will serve for a message: what RETR must give back. */
export function messageBytes(message: MessageInput): Buffer {
  return typeof message === 'string' ? Buffer.from(message.replace(/\r?\n/g, '\r\n'), 'utf8') : message;
}

/**
 * Writes `<home>/Maildir/{cur,new,tmp}` with one file per message in `cur/`.
 * Names start with increasing timestamps, so dovecot hands out UIDs (and POP3 numbers) in the given order.
 */
export async function writeMaildir(
  home: string,
  messages: MessageInput[],
  owner?: { uid: number; gid: number },
): Promise<void> {
  const maildir = join(home, 'Maildir');
  for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(maildir, sub), { recursive: true, mode: 0o700 });
  for (const [i, message] of messages.entries()) {
    await writeFile(join(maildir, 'cur', messageFileName(i)), messageBytes(message), { mode: 0o600 });
  }
  if (owner === undefined) return;
  const paths = [home, maildir, ...['cur', 'new', 'tmp'].map((sub) => join(maildir, sub))];
  paths.push(...messages.map((_, i) => join(maildir, 'cur', messageFileName(i))));
  for (const path of paths) await chown(path, owner.uid, owner.gid);
}

// Maildir "time.unique:2,flags" names; dovecot sorts new files by the time part when assigning UIDs.
function messageFileName(index: number): string {
  return `${1_700_000_000 + index}.M${index}P1.concierge-interop:2,`;
}
