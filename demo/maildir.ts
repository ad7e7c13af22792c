/**
 * The demo's mail store: `<root>/passwd` with `user:password` lines, and one Maildir per
 * user at `<root>/<user>/` whose `cur/` and `new/` files are the messages.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { measureWireOctets } from './message-transfer.js';

/** One message as a POP3 session sees it. */
export interface StoredMessage {
  readonly path: string;
  /** The Maildir file name up to its ':' info suffix, stable across flag changes. */
  readonly uid: string;
  /** Octets in CRLF form before dot-stuffing (RFC 1939 §5, STAT and LIST). */
  readonly octets: number;
}

interface MeasuredSize {
  readonly fileSize: number;
  readonly mtimeMs: number;
  readonly octets: number;
}

/** Reads passwords and mailboxes under one root; remembers message sizes between logins. */
export class MaildirStore {
  // Measuring means reading the whole file, which the benchmark's 64 MiB message makes
  // worth skipping on every login after the first.
  private readonly sizes = new Map<string, MeasuredSize>();

  constructor(readonly root: string) {}

  /** The `passwd` entries, read afresh so that tests may edit the file between sessions. */
  async readPasswords(): Promise<Map<string, string>> {
    let text: string;
    try {
      // latin1 compares octet for octet with what the client sent, whatever its charset.
      text = await readFile(join(this.root, 'passwd'), 'latin1');
    } catch (error) {
      if (isMissing(error)) return new Map();
      throw error;
    }
    const passwords = new Map<string, string>();
    for (const rawLine of text.split('\n')) {
      const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
      if (line.trim() === '' || line.startsWith('#')) continue;
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      passwords.set(line.slice(0, colon), line.slice(colon + 1));
    }
    return passwords;
  }

  /** The user's messages from `cur/` and `new/`, ordered by file name. */
  async listMessages(user: string): Promise<StoredMessage[]> {
    const home = join(this.root, user);
    const files: { name: string; path: string }[] = [];
    for (const folder of ['cur', 'new']) {
      for (const entry of await readFolder(join(home, folder))) {
        // Maildir readers skip dot files; they are never deliveries.
        if (entry.isFile() && !entry.name.startsWith('.')) {
          files.push({ name: entry.name, path: join(home, folder, entry.name) });
        }
      }
    }
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const messages: StoredMessage[] = [];
    for (const file of files) {
      const colon = file.name.indexOf(':');
      const uid = colon === -1 ? file.name : file.name.slice(0, colon);
      messages.push({ path: file.path, uid, octets: await this.measure(file.path) });
    }
    return messages;
  }

  /** Deletes the given message files; returns how many could not be removed. */
  async removeMessages(messages: readonly StoredMessage[]): Promise<number> {
    let failures = 0;
    for (const message of messages) {
      try {
        await unlink(message.path);
      } catch (error) {
        if (!isMissing(error)) failures += 1;
      }
      this.sizes.delete(message.path);
    }
    return failures;
  }

  private async measure(path: string): Promise<number> {
    const { size: fileSize, mtimeMs } = await stat(path);
    const known = this.sizes.get(path);
    if (known !== undefined && known.fileSize === fileSize && known.mtimeMs === mtimeMs) return known.octets;
    const octets = await measureWireOctets(path);
    this.sizes.set(path, { fileSize, mtimeMs, octets });
    return octets;
  }
}

/** A user name that names exactly one directory under the root. */
export function isSafeUserName(user: string): boolean {
  return /^[\x21-\x7e]+$/.test(user) && !user.includes('/') && user !== '.' && user !== '..';
}

async function readFolder(path: string): Promise<Dirent[]> {
  try {
    return await readdir(path, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

function isMissing(error: unknown): boolean {
  return error instanceof Error && 'code' in error && (error.code === 'ENOENT' || error.code === 'ENOTDIR');
}
