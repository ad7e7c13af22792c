import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { ClientGoneError } from '../src/errors.js';
import { LineChannel } from '../src/line-channel.js';

/** A connected socket pair over loopback: `far` writes, `near` is framed. */
let server: net.Server;
before(async () => {
  server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
});
after(() => server.close());

async function pair(): Promise<{ near: net.Socket; far: net.Socket }> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const far = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  const [near] = await accepted;
  await once(far, 'connect');
  return { near, far };
}

test('frames CRLF lines across segments, keeps bytes as latin1, reports long and invalid lines', async () => {
  const { near, far } = await pair();
  const ch = new LineChannel(near, 'client', 16);
  far.write('US');
  far.write(Buffer.from([0x45, 0x52, 0x20, 0xe9, 0x0d, 0x0a])); // "ER é" in latin1
  assert.deepEqual(await ch.next(), { kind: 'line', line: 'USER \u00e9' });
  far.write('bare LF works\n');
  assert.deepEqual(await ch.next(), { kind: 'line', line: 'bare LF works' });
  far.write('this line is far too long for sixteen\r\nNOOP\r\n');
  assert.deepEqual(await ch.next(), { kind: 'tooLong' });
  assert.deepEqual(await ch.next(), { kind: 'line', line: 'NOOP' }, 'the rest of the long line is dropped, the next line survives');
  far.write('a\0b\r\nc\rd\r\n');
  assert.deepEqual(await ch.next(), { kind: 'invalid' });
  assert.deepEqual(await ch.next(), { kind: 'invalid' });
  far.destroy();
  near.destroy();
});

test('release() returns exactly the unread bytes', async () => {
  const { near, far } = await pair();
  const ch = new LineChannel(near, 'client', 255);
  far.write('PASS x\r\nSTAT\r\nLIST');
  assert.deepEqual(await ch.next(), { kind: 'line', line: 'PASS x' });
  assert.equal(ch.release().toString(), 'STAT\r\nLIST');
  far.destroy();
  near.destroy();
});

test('a peer that leaves rejects the pending read with a typed error', async () => {
  const { near, far } = await pair();
  const ch = new LineChannel(near, 'client', 255);
  const pending = ch.next();
  far.end('half a line');
  await assert.rejects(pending, (err: unknown) => err instanceof ClientGoneError && err.code === 'CLIENT_CLOSED');
  near.destroy();
});

test('a backend reply timeout rejects with BACKEND_TIMEOUT', async () => {
  const { near, far } = await pair();
  const ch = new LineChannel(near, 'backend', 255);
  await assert.rejects(ch.next({ timeoutMs: 20 }), { code: 'BACKEND_TIMEOUT' });
  far.destroy();
  near.destroy();
});
