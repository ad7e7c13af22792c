import type { AddressInfo } from 'node:net';
import type { PortRange } from '../src/config.js';

/** A logger with bunyan's shape that drops everything: ftp-srv's own JSON logs would drown Concierge's. */
const silent: Record<string, unknown> = {};
for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) silent[level] = () => {};
silent.child = () => silent;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const;

/**
 * The demo tenants' FTP backend: ftp-srv (a dev dependency, loaded when the demo asks for it)
 * serving one folder to a few users, on 127.0.0.1.
 */
export class DemoFtpServer {
  private server: { listen(): Promise<unknown>; close(): Promise<unknown> } | undefined;
  port = 0;

  constructor(private readonly options: { host: string; port: number; root: string; users: Record<string, string>; passivePorts: PortRange }) {}

  /** Whether ftp-srv is installed (it is not in an image built with dev dependencies pruned). */
  static async available(): Promise<boolean> {
    return import('ftp-srv').then(
      () => true,
      () => false,
    );
  }

  async listen(): Promise<void> {
    let FtpSrv: typeof import('ftp-srv').FtpSrv;
    try {
      ({ FtpSrv } = await import('ftp-srv'));
    } catch {
      throw new Error('the FTP demo needs ftp-srv: run `npm install` (it is a dev dependency)');
    }
    const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
    const { host, port, root, users, passivePorts } = this.options;
    const server = new FtpSrv({ url: `ftp://${host}:${port}`, pasv_url: host, pasv_min: passivePorts.from, pasv_max: passivePorts.to, log: silent as never });
    // ftp-srv installs signal handlers that call process.exit; Concierge's own handlers stop the demo.
    for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.off(s, l);
    server.on('login', ({ username, password }, resolve, reject) => {
      if (users[username] !== undefined && users[username] === password) resolve({ root });
      else reject(new Error('Login incorrect'));
    });
    server.on('client-error', () => {});
    await server.listen();
    this.server = server;
    this.port = ((server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
