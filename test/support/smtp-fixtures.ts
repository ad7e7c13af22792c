import { type Config, parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import { captureLogs } from './logs.js';
import { SmtpBackend } from './smtp-backend.js';

export const PASSWORD_A = 'pw-of-alice-at-a';
export const PASSWORD_B = 'pw-of-alice-at-b';

/** Two tenants with smtp-server backends; `listener` patches the smtp listener, `backendOptions` each tenant's backend entry. */
export interface SmtpEnv {
  readonly concierge: Concierge;
  /** The config it started with (for reloads). */
  readonly config: Config;
  readonly port: number;
  readonly a: SmtpBackend;
  readonly b: SmtpBackend;
  readonly logs: ReturnType<typeof captureLogs>;
  close(): Promise<void>;
}

export async function startSmtpTenants(options: {
  listener?: Record<string, unknown>;
  backendA?: ConstructorParameters<typeof SmtpBackend>[0];
  backendB?: ConstructorParameters<typeof SmtpBackend>[0];
  optionsA?: Record<string, unknown>;
  limits?: Record<string, unknown>;
  /** Backends listed for tenant a before its real one (dead ports, for failover). */
  deadA?: number[];
  /** Edits the raw tenants before validation (certificates, backend TLS). */
  tenantPatch?: (tenants: Record<string, any>[]) => void;
  /** Listeners after the first (same tenants), e.g. the implicit-TLS twin of a STARTTLS one. */
  extraListeners?: Record<string, unknown>[];
} = {}): Promise<SmtpEnv> {
  const a = new SmtpBackend({ users: { alice: PASSWORD_A }, ...options.backendA });
  const b = new SmtpBackend({ users: { alice: PASSWORD_B }, ...options.backendB });
  await a.listen();
  await b.listen();
  const logs = captureLogs('debug');
  const tenants: Record<string, any>[] = [
    {
      domain: 'a.example',
      aliases: ['mail.a.example'],
      sourceAddress: '127.0.0.2',
      backends: { smtp: [...(options.deadA ?? []).map((port) => ({ host: '127.0.0.1', port })), { host: '127.0.0.1', port: a.port, ...options.optionsA }] },
    },
    { domain: 'b.example', sourceAddress: '127.0.0.3', backends: { smtp: [{ host: '127.0.0.1', port: b.port }] } },
  ];
  options.tenantPatch?.(tenants);
  const config = parseConfig({
    log: { level: 'debug' },
    limits: { authFailDelayMs: 50, loginTimeoutMs: 5_000, connectTimeoutMs: 1_000, backendReplyTimeoutMs: 2_000, idleTimeoutMs: 20_000, ...options.limits },
    listeners: [{ protocol: 'smtp', address: '127.0.0.1', port: 0, mode: 'mx', hostname: 'mx.concierge.test', maxMessageSize: 32 * 1024 * 1024, ...options.listener }, ...(options.extraListeners ?? [])],
    tenants,
  });
  const concierge = await startConcierge(config, { logger: logs.logger });
  return {
    concierge,
    config,
    port: concierge.listeners[0]!.address().port,
    a,
    b,
    logs,
    async close() {
      await concierge.close(0);
      await Promise.all([a.close(), b.close()]);
    },
  };
}
