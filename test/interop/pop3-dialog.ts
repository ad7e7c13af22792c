import net from 'node:net';

/** Where a raw POP3 client connects, and the source address it binds (a tenant IP such as 127.0.0.2). */
export interface Pop3Target {
  port: number;
  host?: string;
  localAddress?: string;
  /** Bound on each reply; default 5 000. */
  replyTimeoutMs?: number;
}

/**
 * Talks POP3 by hand: reads the greeting, then sends each command in one write and reads its
 * one-line reply (so only single-line commands: USER, PASS, STAT, DELE, NOOP, QUIT …).
 * Resolves with [greeting, ...replies] once the server has closed after the last reply was read.
 */
export function pop3Dialog(target: Pop3Target, commands: string[]): Promise<string[]> {
  const timeoutMs = target.replyTimeoutMs ?? 5_000;
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: target.host ?? '127.0.0.1',
      port: target.port,
      ...(target.localAddress === undefined ? {} : { localAddress: target.localAddress }),
    });
    const replies: string[] = [];
    let buffered = Buffer.alloc(0);
    let failure: Error | undefined;
    const fail = (err: Error) => {
      failure ??= err;
      socket.destroy();
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no reply within ${timeoutMs} ms after ${JSON.stringify(replies)}`)));
    socket.on('error', fail);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (let end = buffered.indexOf('\r\n'); end >= 0; end = buffered.indexOf('\r\n')) {
        replies.push(buffered.subarray(0, end).toString('latin1'));
        buffered = buffered.subarray(end + 2);
        const next = commands[replies.length - 1];
        if (next !== undefined) socket.write(`${next}\r\n`);
        else if (replies.length === commands.length + 1) socket.end();
        else return fail(new Error(`unexpected line ${JSON.stringify(replies.at(-1))}`));
      }
    });
    socket.on('close', () => {
      if (failure !== undefined) reject(failure);
      else if (replies.length < commands.length + 1) reject(new Error(`closed early after ${JSON.stringify(replies)}`));
      else resolve(replies);
    });
  });
}
