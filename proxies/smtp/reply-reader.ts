import { BackendError } from '../../src/errors.js';
import type { LineChannel } from '../../src/line-channel.js';

/** A backend's whole reply: its code and its lines as received (CRLF included), ready to forward. */
export interface SmtpReply {
  readonly code: number;
  readonly text: string;
  /** Each line's text after `NNN-` / `NNN `. */
  readonly lines: readonly string[];
}

/** More lines than any sane EHLO reply. */
const MAX_REPLY_LINES = 100;

/** Reads one reply, multi-line included (RFC 5321 §4.2.1). Throws BackendError on anything else. */
export async function readReply(backend: LineChannel, timeoutMs: number, step: string): Promise<SmtpReply> {
  let text = '';
  const lines: string[] = [];
  for (let i = 0; i < MAX_REPLY_LINES; i++) {
    const event = await backend.next({ timeoutMs });
    if (event.kind !== 'line') throw new BackendError('BACKEND_PROTOCOL', `malformed reply ${step}`);
    const { line } = event;
    const code = replyCode(line);
    const separator = line[3];
    if (code === undefined || (separator !== undefined && separator !== ' ' && separator !== '-')) throw new BackendError('BACKEND_PROTOCOL', `not an SMTP reply ${step}`);
    text += `${line}\r\n`;
    lines.push(line.slice(4));
    if (separator !== '-') return { code, text, lines };
  }
  throw new BackendError('BACKEND_PROTOCOL', `reply longer than ${MAX_REPLY_LINES} lines ${step}`);
}

/** The reply code 200–599 that `line` starts with (RFC 5321 §4.2: three digits, the first 2–5). */
function replyCode(line: string): number | undefined {
  const first = line.charCodeAt(0) - 0x30;
  const second = line.charCodeAt(1) - 0x30;
  const third = line.charCodeAt(2) - 0x30;
  if (!(first >= 2 && first <= 5 && second >= 0 && second <= 9 && third >= 0 && third <= 9)) return undefined;
  return first * 100 + second * 10 + third;
}

/** EHLO keywords (upper-cased) → their parameters, from a 250 reply's lines after the first. */
export function extensionsOf(reply: SmtpReply): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of reply.lines.slice(1)) {
    const space = line.indexOf(' ');
    out.set((space < 0 ? line : line.slice(0, space)).toUpperCase(), space < 0 ? '' : line.slice(space + 1));
  }
  return out;
}
