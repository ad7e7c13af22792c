import { once } from 'node:events';
import net from 'node:net';

/** A connected loopback pair, both ends paused as the data relay gets them: the dialled socket and the accepted one. */
export async function tcpPair(): Promise<{ dialled: net.Socket; accepted: net.Socket; close(): void }> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dialled = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  dialled.pause();
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  await once(dialled, 'connect');
  server.close();
  return { dialled, accepted, close: () => (dialled.destroy(), accepted.destroy()) };
}
