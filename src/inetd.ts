import net from 'node:net';
import type { Config } from './config.js';
import { startConcierge } from './concierge.js';
import { createLogger } from './log.js';
import type { Protocol } from './tenants.js';

/**
 * inetd mode: serves the one connection inetd / xinetd (`wait = no`) or systemd (`Accept=yes`)
 * hands over as fd 0, with the settings of the config's first listener for `protocol`, then
 * resolves. stdout is the client's connection here, so logs go to stderr (inetd and systemd
 * route it to syslog / the journal).
 */
export async function serveInetd(config: Config, protocol: Protocol): Promise<void> {
  const logger = createLogger(config.log.level, process.stderr);
  const concierge = await startConcierge(config, { logger, bind: false });
  const listener = concierge.listeners.find((l) => l.config.protocol === protocol);
  if (!listener) throw new Error(`the config has no ${protocol} listener to take its settings from`);
  const socket = new net.Socket({ fd: 0, readable: true, writable: true, allowHalfOpen: true });
  socket.setNoDelay(true);
  listener.adopt(socket);
  await listener.whenIdle();
}
