import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { FileSystem, FtpSrv } from 'ftp-srv';

/** A login as ftp-srv saw it: `ip` is the control connection's remote address (the tenant's source address). */
export interface FtpLoginRecord {
  readonly ip: string;
  readonly user: string;
  readonly ok: boolean;
}

/** A finished RETR / STOR as ftp-srv saw it, with the remote address of its data connection. */
export interface FtpTransferRecord {
  readonly kind: 'RETR' | 'STOR';
  readonly controlIp: string;
  readonly dataIp: string | undefined;
  readonly path: string;
  readonly error: string | undefined;
}

/** An ftp-srv instance in-process on 127.0.0.1 with its own temporary root and users. */
export interface FtpBackend {
  readonly port: number;
  readonly root: string;
  readonly logins: FtpLoginRecord[];
  readonly transfers: FtpTransferRecord[];
  /** Control connections open right now. */
  open(): number;
  close(): Promise<void>;
}

/** A logger that drops everything, with bunyan's shape (ftp-srv calls child() and every level). */
const silent: Record<string, unknown> = {};
for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal']) silent[level] = () => {};
silent.child = () => silent;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const;

/**
 * Starts ftp-srv with `users` (name → password) sharing one root folder holding `files`.
 * `pasv` must be disjoint from every other test file's ranges (ftp-srv tries only 5 ports).
 */
/** A file system whose `broken.bin` sends `BROKEN_PREFIX` bytes and then fails: a backend that drops a transfer midway. */
export const BROKEN_PREFIX = 256 * 1024;

class BreakingFileSystem extends FileSystem {
  override read(fileName: string, options?: { start?: any }): Promise<any> {
    if (path.basename(fileName) !== 'broken.bin') return super.read(fileName, options ?? {});
    let sent = false;
    const stream = new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(Buffer.alloc(BROKEN_PREFIX, 0x61));
        } else {
          // Later, not at once: ftp-srv attaches its rejection handler only after its 150 is written.
          setTimeout(() => this.destroy(new Error('disk on fire')), 100);
        }
      },
    });
    return Promise.resolve({ stream, clientPath: fileName });
  }
}

/** TLS for an ftp-srv backend: AUTH TLS offered on a plain port, or (`implicit`) TLS from the first byte. */
export interface FtpBackendTls {
  readonly cert: string;
  readonly key: string;
  readonly implicit?: boolean;
}

export async function startFtpBackend(options: {
  users: Record<string, string>;
  files?: Record<string, string | Buffer>;
  pasv: { min: number; max: number };
  greeting?: string[];
  tls?: FtpBackendTls;
}): Promise<FtpBackend> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'concierge-ftp-'));
  for (const [name, content] of Object.entries(options.files ?? {})) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), content);
  }
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const tls = options.tls ? { cert: await readFile(options.tls.cert), key: await readFile(options.tls.key) } : false;
  const server = new FtpSrv({
    url: options.tls?.implicit ? 'ftps://127.0.0.1:0' : 'ftp://127.0.0.1:0',
    tls,
    pasv_url: '127.0.0.1',
    pasv_min: options.pasv.min,
    pasv_max: options.pasv.max,
    greeting: options.greeting,
    log: silent as never,
  });
  // ftp-srv installs handlers that call process.exit: not in a test process.
  for (const s of SIGNALS) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.off(s, l);

  const logins: FtpLoginRecord[] = [];
  const transfers: FtpTransferRecord[] = [];
  server.on('login', ({ connection, username, password }, resolve, reject) => {
    const ok = options.users[username] !== undefined && options.users[username] === password;
    logins.push({ ip: connection.ip, user: username, ok });
    if (!ok) return reject(new Error('Bad login from ftp-srv (a text Concierge must never pass on)'));
    for (const kind of ['RETR', 'STOR'] as const) {
      connection.on(kind, (error: Error | null, file: string) => {
        const dataSocket = (connection as unknown as { connector?: { socket?: { remoteAddress?: string } } }).connector?.socket;
        transfers.push({ kind, controlIp: connection.ip, dataIp: dataSocket?.remoteAddress, path: file, error: error?.message });
      });
    }
    resolve({ fs: new BreakingFileSystem(connection, { root, cwd: '/' }) });
  });
  server.on('client-error', () => {});
  await server.listen();
  const port = ((server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  return {
    port,
    root,
    logins,
    transfers,
    open: () => Object.keys((server as unknown as { connections: object }).connections).length,
    async close() {
      await server.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
