import { DemoPop3Server } from '../../demo/pop3-server.js';
import { parseConfig, type Config } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import type { Logger } from '../../src/log.js';
import { captureLogs } from './logs.js';
import { makeMaildir, message, type MailUsers } from './maildir.js';

/** A validated config on an ephemeral port with quick test limits; `patch` edits the raw JSON first. */
export function testConfig(tenants: unknown[], patch: (raw: Record<string, any>) => void = () => {}): Config {
  const raw: Record<string, any> = {
    log: { level: 'debug' },
    limits: { authFailDelayMs: 50, loginTimeoutMs: 5_000, connectTimeoutMs: 1_000, backendReplyTimeoutMs: 1_000, idleTimeoutMs: 10_000 },
    listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
    tenants,
  };
  patch(raw);
  return parseConfig(raw);
}

/** Two tenants, a.example (127.0.0.2) and b.example (127.0.0.3), each with its own demo backend and a user `alice`. */
export interface TwoTenants {
  readonly concierge: Concierge;
  readonly port: number;
  readonly backendA: DemoPop3Server;
  readonly backendB: DemoPop3Server;
  readonly logs: ReturnType<typeof captureLogs>;
  readonly logger: Logger;
  /** The raw tenant entries the config was made from (for a reloaded config with the same tenants). */
  readonly tenants: Record<string, any>[];
  close(): Promise<void>;
}

export const PASSWORD_A = 'secret-of-alice-at-a';
export const PASSWORD_B = 'secret-of-alice-at-b';

export async function startTwoTenants(options: { usersA?: MailUsers; usersB?: MailUsers; patch?: (raw: Record<string, any>) => void; tenantPatch?: (t: Record<string, any>[]) => void } = {}): Promise<TwoTenants> {
  const mailA = await makeMaildir(options.usersA ?? { alice: { password: PASSWORD_A, messages: [message('alice@a.example', 'mail for alice at a')] } });
  const mailB = await makeMaildir(options.usersB ?? { alice: { password: PASSWORD_B, messages: [message('alice@b.example', 'mail for alice at b'), message('alice@b.example', 'second at b')] } });
  const backendA = new DemoPop3Server({ maildir: mailA.dir });
  const backendB = new DemoPop3Server({ maildir: mailB.dir });
  await backendA.listen();
  await backendB.listen();
  const tenants: Record<string, any>[] = [
    { domain: 'a.example', aliases: ['mail.a.example'], sourceAddress: '127.0.0.2', backends: { pop3: [{ host: '127.0.0.1', port: backendA.port }] } },
    { domain: 'b.example', sourceAddress: '127.0.0.3', backends: { pop3: [{ host: '127.0.0.1', port: backendB.port }] } },
  ];
  options.tenantPatch?.(tenants);
  const logs = captureLogs('debug');
  const concierge = await startConcierge(testConfig(tenants, options.patch), { logger: logs.logger });
  const port = concierge.listeners[0]!.address().port;
  return {
    concierge,
    port,
    backendA,
    backendB,
    logs,
    logger: logs.logger,
    tenants,
    async close() {
      // No grace: a test that leaves a session open is cut at once (shutdown tests call close themselves).
      await concierge.close(0);
      await Promise.all([backendA.close(), backendB.close()]);
      await Promise.all([mailA.remove(), mailB.remove()]);
    },
  };
}
