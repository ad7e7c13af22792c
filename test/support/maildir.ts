import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Users of a throwaway maildir: password and messages (CRLF text or raw bytes). */
export type MailUsers = Record<string, { password: string; messages: Array<string | Buffer> }>;

/** Writes a maildir tree in a temp folder for DemoPop3Server; `remove()` deletes it. */
export async function makeMaildir(users: MailUsers): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-mail-'));
  const passwd: string[] = [];
  for (const [user, { password, messages }] of Object.entries(users)) {
    passwd.push(`${user}:${password}`);
    const cur = path.join(dir, user, 'cur');
    await mkdir(cur, { recursive: true });
    await mkdir(path.join(dir, user, 'new'), { recursive: true });
    let n = 0;
    for (const message of messages) await writeFile(path.join(cur, `${1700000000 + ++n}.M${n}.test:2,S`), message);
  }
  await writeFile(path.join(dir, 'passwd'), `${passwd.join('\n')}\n`);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A short RFC 5322 message whose body names who it is for. */
export function message(to: string, body: string): string {
  return [`From: postmaster@example.test`, `To: ${to}`, `Subject: test`, `Message-ID: <${body.replace(/\W/g, '')}@example.test>`, '', body, ''].join('\r\n');
}
