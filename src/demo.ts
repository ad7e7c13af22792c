import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DemoFtpServer } from '../demo/ftp-server.js';
import { DemoPop3Server } from '../demo/pop3-server.js';
import { type DemoDelivery, DemoSmtpServer } from '../demo/smtp-server.js';
import type { Config, ListenerConfig } from './config.js';
import { startConcierge, type Concierge } from './concierge.js';

/** A running demo: Concierge plus the in-process backends its config names. */
export interface Demo {
  readonly concierge: Concierge;
  readonly instructions: string;
  stopBackends(): Promise<void>;
}

/** `user:password` pairs of a demo maildir, to print working commands. */
async function demoUsers(maildir: string): Promise<Array<[string, string]>> {
  const text = await readFile(path.join(maildir, 'passwd'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.includes(':') && !l.startsWith('#'))
    .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]);
}

/** How curl reaches a listener: the URL scheme, and the flags its TLS needs (trusting the listener's own certificate). */
function curlTls(listener: ListenerConfig, scheme: 'pop3' | 'smtp'): { scheme: string; flags: string } {
  const trust = listener.certificate ? `--cacert ${listener.certificate.cert} ` : '';
  if (listener.tls === 'implicit') return { scheme: `${scheme}s`, flags: trust };
  if (listener.tls === 'starttls') return { scheme, flags: `--ssl-reqd ${trust}` };
  return { scheme, flags: '' };
}

/** Starts the config's demo POP3 servers, then Concierge, and says how to try it. */
export async function runDemo(config: Config): Promise<Demo> {
  const servers = (config.demo?.pop3Servers ?? []).map((d) => ({ d, server: new DemoPop3Server({ maildir: d.maildir, host: d.address, port: d.port }) }));
  const ftpWanted = config.demo?.ftpServers ?? [];
  const ftpSkipped = ftpWanted.length > 0 && !(await DemoFtpServer.available());
  const ftpServers = (ftpSkipped ? [] : ftpWanted).map((d) => ({ d, server: new DemoFtpServer({ host: d.address, port: d.port, root: d.root, users: d.users, passivePorts: d.passivePorts }) }));
  const smtpWanted = config.demo?.smtpServers ?? [];
  const smtpSkipped = smtpWanted.length > 0 && !(await DemoSmtpServer.available());
  // Deliveries are logged by Concierge's logger, which exists once Concierge has started.
  let report: (tenant: string, delivery: DemoDelivery) => void = () => {};
  // A sink the relay's transports point at stands for the outside world, not for a tenant.
  const sinks = new Set(Object.values(config.relay?.transports ?? {}));
  const smtpServers = (smtpSkipped ? [] : smtpWanted).map((d) => {
    const tenant = sinks.has(`${d.address}:${d.port}`) ? 'the outside world' : (config.tenants.find((t) => t.backends.smtp.some((b) => b.port === d.port))?.domain ?? '?');
    return { d, server: new DemoSmtpServer({ host: d.address, port: d.port, name: `smtp.${tenant}` }, (delivery) => report(tenant, delivery)) };
  });
  const stopBackends = async () => {
    await Promise.all([...servers, ...ftpServers, ...smtpServers].map(({ server }) => server.close()));
  };
  try {
    for (const { server } of servers) await server.listen();
    for (const { server } of ftpServers) await server.listen();
    for (const { server } of smtpServers) await server.listen();
  } catch (err) {
    await stopBackends();
    throw err;
  }
  const concierge = await startConcierge(config).catch(async (err: unknown) => {
    await stopBackends();
    throw err;
  });

  report = (tenant, delivery) =>
    tenant === 'the outside world'
      ? concierge.logger.info('demo mail sink (the outside world) received a message', { ...delivery })
      : concierge.logger.info('demo SMTP backend received a message', { backendOf: tenant, ...delivery });

  const out = ['', 'Concierge demo is running.'];
  for (const l of concierge.listeners) {
    const tls = l.config.tls === 'implicit' ? ' (TLS)' : l.config.tls === 'starttls' ? ` (STARTTLS${l.config.requireTls ? ' required' : ''})` : '';
    out.push(`  ${l.config.protocol.toUpperCase()} ${l.config.mode === 'relay' ? 'relay (outbound, for tenants)' : 'front door'}${tls}: ${l.config.address}:${l.address().port}`);
  }
  for (const t of config.tenants) {
    const backends = (['pop3', 'ftp', 'smtp'] as const)
      .filter((p) => t.backends[p].length > 0)
      .map((p) => `${p.toUpperCase()} backend ${t.backends[p].map((b) => `${b.host}:${b.port}`).join(', ')}`)
      .join('; ');
    out.push(`  tenant ${t.domain}: ${backends}, dialled from ${t.sourceAddress ?? 'any address'}`);
  }
  const pop3Listeners = concierge.listeners.filter((l) => l.config.protocol === 'pop3');
  if (pop3Listeners.length > 0) out.push('', 'Try it (same user name, two tenants, two mailboxes):');
  for (const pop3 of pop3Listeners) {
    for (const { d } of servers) {
      const tenant = config.tenants.find((t) => t.backends.pop3.some((b) => b.port === d.port));
      if (!tenant) continue;
      for (const [user, password] of await demoUsers(d.maildir)) {
        const { scheme, flags } = curlTls(pop3.config, 'pop3');
        out.push(`  curl ${flags}-u '${user}@${tenant.domain}:${password}' ${scheme}://${pop3.config.address}:${pop3.address().port}/1`);
      }
    }
  }
  const ftp = concierge.listeners.find((l) => l.config.protocol === 'ftp');
  if (ftpSkipped) out.push('', 'FTP demo backends skipped: ftp-srv (a dev dependency) is not installed here.');
  if (ftp && ftpServers.length > 0) {
    out.push('', 'FTP (passive, then active with -P):');
    for (const { d } of ftpServers) {
      const tenant = config.tenants.find((t) => t.backends.ftp.some((b) => b.port === d.port));
      if (!tenant) continue;
      for (const [user, password] of Object.entries(d.users)) {
        const url = `ftp://${ftp.config.address}:${ftp.address().port}/welcome.txt`;
        out.push(`  curl -u '${user}@${tenant.domain}:${password}' ${url}`);
        out.push(`  curl -P ${ftp.config.address} -u '${user}@${tenant.domain}:${password}' ${url}`);
      }
    }
  }
  const smtp = concierge.listeners.find((l) => l.config.protocol === 'smtp');
  if (smtpSkipped) out.push('', 'SMTP demo backends skipped: smtp-server (a dev dependency) is not installed here.');
  if (smtp && smtpServers.length > 0) {
    out.push('', 'SMTP (inbound: the recipient picks the tenant; the log shows which backend got it, from which address):');
    for (const t of config.tenants.filter((t) => t.backends.smtp.length > 0)) {
      const { scheme, flags } = curlTls(smtp.config, 'smtp');
      out.push(`  printf 'Subject: hello\\r\\n\\r\\nHi Alice\\r\\n' | curl -sS ${flags}${scheme}://${smtp.config.address}:${smtp.address().port} --mail-from you@example.org --mail-rcpt alice@${t.domain} -T -`);
    }
  }
  const relay = concierge.listeners.find((l) => l.config.mode === 'relay');
  if (relay && smtpServers.length > 0 && config.relay) {
    out.push('', `Outbound relay (each tenant's mail leaves from its own address; the sink logs remoteAddress and helo; queues in ${config.relay.spool}):`);
    for (const t of config.tenants.filter((t) => t.relayFrom.length > 0)) {
      const from = t.relayFrom[0]!.replace(/\/\d+$/, '');
      out.push(`  printf 'Subject: hello from ${t.domain}\\r\\n\\r\\nHi\\r\\n' | curl -sS --interface ${from} smtp://${relay.config.address}:${relay.address().port} --mail-from web@${t.domain} --mail-rcpt someone@elsewhere.example -T -`);
    }
  }
  out.push('', 'Logs follow as JSON lines. Ctrl-C stops.', '');
  return { concierge, instructions: out.join('\n') + '\n', stopBackends };
}
