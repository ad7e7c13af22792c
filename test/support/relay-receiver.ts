import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

/** One message as a receiving server saw it. */
export interface Received {
  readonly remoteAddress: string;
  readonly helo: string;
  readonly from: string;
  readonly to: string[];
  readonly messageId: string | undefined;
  readonly body: string;
  /** Received inside TLS (STARTTLS). */
  readonly secure: boolean;
}

type Verdict = number | undefined;

/**
 * An smtp-server on 127.0.0.1:0 standing in for a remote MX: it records the connecting address,
 * the EHLO name and each message. `onData` picks the reply code to each end of data (default 250),
 * `onRcpt` the one to each recipient; `sessions` counts connections (reuse checks).
 */
export class Receiver {
  readonly messages: Received[] = [];
  /** Every end-of-data reply given (250 included), in order. */
  readonly dataReplies: number[] = [];
  sessions = 0;
  port = 0;
  private readonly server: SMTPServer;
  private waiters: Array<() => void> = [];

  /** `starttls`: offer STARTTLS with smtp-server's built-in self-signed certificate. */
  constructor(options: { onData?: (n: number) => Verdict; onRcpt?: (address: string) => Verdict; starttls?: boolean; noSmtputf8?: boolean } = {}) {
    this.server = new SMTPServer({
      logger: false,
      hideSMTPUTF8: options.noSmtputf8 ?? false,
      disableReverseLookup: true,
      disabledCommands: options.starttls ? ['AUTH'] : ['STARTTLS', 'AUTH'],
      authOptional: true,
      size: 64 * 1024 * 1024,
      onConnect: (_session, callback) => {
        this.sessions++;
        callback();
      },
      onRcptTo: (address, _session, callback) => {
        const code = options.onRcpt?.(address.address);
        if (!code || code < 400) return callback();
        const err = new Error(code >= 500 ? 'No such user here' : 'Try again later') as Error & { responseCode: number };
        err.responseCode = code;
        callback(err);
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const code = options.onData?.(this.dataReplies.length) ?? 250;
          this.dataReplies.push(code);
          if (code >= 400) {
            const err = new Error(code >= 500 ? 'Message rejected' : 'Greylisted, try again later') as Error & { responseCode: number };
            err.responseCode = code;
            this.wake();
            return callback(err);
          }
          const body = Buffer.concat(chunks).toString('latin1');
          this.messages.push({
            remoteAddress: session.remoteAddress,
            helo: String(session.hostNameAppearsAs || ''),
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            messageId: /^Message-ID:\s*(\S+)/im.exec(body)?.[1],
            body,
            secure: Boolean(session.secure),
          });
          this.wake();
          callback(null, 'Message accepted');
        });
      },
    });
    this.server.on('error', () => {});
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.server.address() as AddressInfo).port;
    return this.port;
  }

  /** Resolves once `n` messages have been accepted. */
  async waitForMessages(n: number): Promise<void> {
    while (this.messages.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  /** Resolves once `n` end-of-data replies (of any code) have been given. */
  async waitForDataReplies(n: number): Promise<void> {
    while (this.dataReplies.length < n) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
