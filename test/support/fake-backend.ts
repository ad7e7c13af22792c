import net from 'node:net';
import { once } from 'node:events';

/** A misbehaving backend for failure tests: `behave` decides what each accepted socket gets. */
export async function startFakeBackend(behave: (socket: net.Socket) => void): Promise<{ port: number; open: () => number; accepted: () => number; closedAll: () => Promise<void>; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let waiters: Array<() => void> = [];
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.once('close', () => {
      sockets.delete(socket);
      if (sockets.size === 0) {
        for (const w of waiters) w();
        waiters = [];
      }
    });
    behave(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    open: () => sockets.size,
    accepted: () => accepted,
    closedAll: () => (sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => waiters.push(resolve))),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
