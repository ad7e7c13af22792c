import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { spliceAddon, type SpliceAddon } from '../src/data-path.js';
import { relayData } from '../src/data-relay.js';
import { tcpPair } from './support/tcp-pair.js';

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
  const { dialled: clientFar, accepted: client } = await tcpPair();
  const { dialled: backend, accepted: backendFar } = await tcpPair();
  for (const s of [clientFar, client, backend, backendFar]) s.on('error', () => {});
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
