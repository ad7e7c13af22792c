import type { AddressInfo } from 'node:net';

/** What the demo sink saw of one delivered message. */
export interface DemoDelivery {
  readonly from: string;
  readonly to: readonly string[];
  /** The connecting address: the tenant's source address when the mail came through Concierge. */
  readonly remoteAddress: string;
  readonly helo: string;
  readonly bytes: number;
}

/**
 * The demo tenants' SMTP backend: smtp-server (a dev dependency, loaded when the demo asks for
 * it) that accepts every message, keeps nothing, and reports each delivery.
 */
export class DemoSmtpServer {
  private server: { close(cb: () => void): void } | undefined;
  port = 0;

  constructor(
    private readonly options: { host: string; port: number; name: string },
    private readonly onDelivery: (delivery: DemoDelivery) => void,
  ) {}

  /** Whether smtp-server is installed (it is not in an image built with dev dependencies pruned). */
  static async available(): Promise<boolean> {
    return import('smtp-server').then(
      () => true,
      () => false,
    );
  }

  async listen(): Promise<void> {
    const { SMTPServer } = await import('smtp-server');
    const server = new SMTPServer({
      name: this.options.name,
      logger: false,
      disableReverseLookup: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      onData: (stream, session, callback) => {
        let bytes = 0;
        stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
        stream.on('end', () => {
          this.onDelivery({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            remoteAddress: session.remoteAddress,
            helo: session.hostNameAppearsAs,
            bytes,
          });
          callback(null, 'Message accepted by the demo sink');
        });
      },
    });
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    this.port = (server.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(resolve));
  }
}
