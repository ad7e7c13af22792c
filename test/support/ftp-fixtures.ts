import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import type { Listener } from '../../src/listener.js';
import { captureLogs } from './logs.js';
import { startFtpBackend, type FtpBackend, type FtpBackendTls } from './ftp-backend.js';

export const FTP_PASSWORD_A = 'ftp-secret-of-alice-at-a';
export const FTP_PASSWORD_B = 'ftp-secret-of-alice-at-b';

/**
 * Port blocks per test file, all below Linux's ephemeral range (32768+): each file passes its
 * own `base`, and takes base..base+99 (backend A's and B's passive ranges, then Concierge's).
 */
export function portBlock(base: number): { a: { min: number; max: number }; b: { min: number; max: number }; concierge: { from: number; to: number } } {
  return { a: { min: base, max: base + 19 }, b: { min: base + 20, max: base + 39 }, concierge: { from: base + 40, to: base + 99 } };
}

/** Two tenants, a.example (127.0.0.2) and b.example (127.0.0.3), each with its own ftp-srv and a user `alice`. */
export interface FtpTwoTenants {
  readonly concierge: Concierge;
  readonly listener: Listener;
  readonly port: number;
  readonly backendA: FtpBackend;
  readonly backendB: FtpBackend;
  readonly logs: ReturnType<typeof captureLogs>;
  close(): Promise<void>;
}

export async function startFtpTwoTenants(options: {
  base: number;
  filesA?: Record<string, string | Buffer>;
  filesB?: Record<string, string | Buffer>;
  listener?: Record<string, unknown>;
  limits?: Record<string, unknown>;
  tenantPatch?: (t: Record<string, any>[]) => void;
  greetingA?: string[];
  /** ftp-srv's TLS for backend A / B. */
  tlsA?: FtpBackendTls;
  tlsB?: FtpBackendTls;
}): Promise<FtpTwoTenants> {
  const block = portBlock(options.base);
  const backendA = await startFtpBackend({ users: { alice: FTP_PASSWORD_A }, files: options.filesA ?? { 'only-at-a.txt': 'file of tenant a\n' }, pasv: block.a, greeting: options.greetingA, tls: options.tlsA });
  const backendB = await startFtpBackend({ users: { alice: FTP_PASSWORD_B }, files: options.filesB ?? { 'only-at-b.txt': 'file of tenant b\n' }, pasv: block.b, tls: options.tlsB });
  const tenants: Record<string, any>[] = [
    { domain: 'a.example', sourceAddress: '127.0.0.2', backends: { ftp: [{ host: '127.0.0.1', port: backendA.port }] } },
    { domain: 'b.example', sourceAddress: '127.0.0.3', backends: { ftp: [{ host: '127.0.0.1', port: backendB.port }] } },
  ];
  options.tenantPatch?.(tenants);
  const logs = captureLogs('debug');
  const config = parseConfig({
    log: { level: 'debug' },
    limits: { authFailDelayMs: 50, loginTimeoutMs: 5_000, connectTimeoutMs: 1_000, backendReplyTimeoutMs: 2_000, idleTimeoutMs: 20_000, dataConnectTimeoutMs: 5_000, ...options.limits },
    listeners: [{ protocol: 'ftp', address: '127.0.0.1', port: 0, passivePorts: block.concierge, ...options.listener }],
    tenants,
  });
  const concierge = await startConcierge(config, { logger: logs.logger });
  const listener = concierge.listeners[0]!;
  return {
    concierge,
    listener,
    port: listener.address().port,
    backendA,
    backendB,
    logs,
    async close() {
      await concierge.close();
      await Promise.all([backendA.close(), backendB.close()]);
    },
  };
}
