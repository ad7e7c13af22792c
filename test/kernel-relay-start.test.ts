import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import { spliceAddon, type SpliceAddon } from '../src/data-path.js';
import { relayData } from '../src/data-relay.js';

/** A connected loopback pair, both ends paused as the data relay gets them. */
async function tcpPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dialled = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  dialled.pause();
  const [accepted] = (await once(server, 'connection')) as [net.Socket];
  await once(dialled, 'connect');
  server.close();
  for (const s of [dialled, accepted]) s.on('error', () => {});
  return [dialled, accepted];
}

const pipesAndEventfds = () =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return /^pipe:|^anon_inode:\[eventfd\]$/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      return false;
    }
  }).length;

test('the addon failing to start the second direction (no fd or thread to spare): the relay fails cleanly, nothing leaks', async () => {
  const real = spliceAddon();
  assert.ok(real, 'native/splice is built');
  let starts = 0;
  // The real addon, refusing its second start as it would with EMFILE.
  const addon: SpliceAddon = {
    start: (src, dst, onDone) => {
      if (++starts === 2) throw new Error('eventfd: Too many open files');
      return real.start(src, dst, onDone);
    },
    progress: (id) => real.progress(id),
    stop: (id) => real.stop(id),
  };
  const before = pipesAndEventfds();
  const [clientFar, client] = await tcpPair();
  const [backend, backendFar] = await tcpPair();
  const errors: string[] = [];
  const outcome = await relayData({ socket: client }, { socket: backend }, 5_000, { addon, onStart: () => assert.fail('no relay started'), onError: (_d, reason) => errors.push(reason) });
  assert.equal(outcome, 'failed');
  assert.deepEqual(errors, ['eventfd: Too many open files']);
  // Both far ends see a reset, not a FIN: neither takes the transfer for a whole file.
  for (const far of [clientFar, backendFar]) {
    far.resume();
    const [err] = (await once(far, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNRESET');
  }
  assert.equal(pipesAndEventfds(), before);
});
