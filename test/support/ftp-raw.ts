import net from 'node:net';
import { once } from 'node:events';
import { RawClient } from './raw-client.js';

/** One FTP reply read from a raw client, all its lines joined with "\n" (RFC 959 §4.2 multi-line framing). */
export async function readFtpReply(c: RawClient): Promise<string> {
  const first = await c.line();
  const lines = [first];
  if (/^\d{3}-/.test(first)) {
    const end = `${first.slice(0, 3)} `;
    for (let l = await c.line(); ; l = await c.line()) {
      lines.push(l);
      if (l.startsWith(end)) break;
    }
  }
  return lines.join('\n');
}

/** Sends a command, returns its (first) reply. */
export async function ftpCommand(c: RawClient, line: string): Promise<string> {
  c.send(`${line}\r\n`);
  return readFtpReply(c);
}

/** Connects, reads the greeting and logs in; asserts nothing, returns the PASS reply. */
export async function ftpLogin(port: number, user: string, password: string, options: { localAddress?: string } = {}): Promise<{ c: RawClient; reply: string }> {
  const c = await RawClient.connect(port, options);
  await readFtpReply(c);
  await ftpCommand(c, `USER ${user}`);
  return { c, reply: await ftpCommand(c, `PASS ${password}`) };
}

/** The port in a 229 reply. */
export function epsvPort(reply: string): number {
  const m = /\(\|\|\|(\d+)\|\)/.exec(reply);
  if (!m) throw new Error(`not a 229 reply: ${reply}`);
  return Number(m[1]);
}

/** Connects a data socket and collects everything until it closes (EOF or reset: the control reply tells which). */
export async function readAll(port: number, options: { host?: string; localAddress?: string } = {}): Promise<Buffer> {
  const socket = net.connect({ host: options.host ?? '127.0.0.1', port, localAddress: options.localAddress });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => {});
  socket.on('end', () => socket.end());
  await once(socket, 'close');
  return Buffer.concat(chunks);
}
