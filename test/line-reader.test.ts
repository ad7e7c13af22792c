import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { LineChannel, type LineEvent } from '../src/line-channel.js';
import { LineReader } from '../src/line-reader.js';
import { ReadHook } from '../src/read-hook.js';

let server: net.Server;
before(async () => {
  server = net.createServer({ allowHalfOpen: true }).listen(0, '127.0.0.1');
  await once(server, 'listening');
});
after(() => server.close());

/** A loopback pair: `far` writes, `near` (the dialled end, with `hook` when given) is read. */
async function pair(hook?: ReadHook): Promise<{ near: net.Socket; far: net.Socket }> {
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const near = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true, ...(hook ? { onread: hook.onread } : {}) });
  const [far] = await accepted;
  await once(near, 'connect');
  if (hook) near.resume(); // as dialBackend does: with onread nothing reads the stream, so it must flow
  return { near, far };
}

/** Records what a reader delivers; `until(n)` resolves once n events (lines and the end) have come. */
function recorder() {
  const events: Array<LineEvent | { kind: 'end'; error?: string }> = [];
  let waiter: { n: number; wake: () => void } | undefined;
  const check = () => {
    if (waiter && events.length >= waiter.n) waiter.wake();
  };
  return {
    events,
    handlers: {
      line: (e: LineEvent) => (events.push(e), check()),
      end: (error?: Error) => (events.push({ kind: 'end', ...(error ? { error: (error as NodeJS.ErrnoException).code } : {}) }), check()),
    },
    until: (n: number) => new Promise<void>((wake) => ((waiter = { n, wake }), check())),
  };
}

test('takes over a LineChannel at the first unread byte, frames across segments, reports long and invalid lines', async () => {
  const { near, far } = await pair();
  const channel = new LineChannel(near, 'client', 16);
  far.write('USER a\r\nPWD\r\nSY');
  assert.deepEqual(await channel.next(), { kind: 'line', line: 'USER a' });
  const reader = LineReader.takeOver(channel, 16);
  const r = recorder();
  reader.start(r.handlers);
  far.write(Buffer.from([0x53, 0x54, 0x0d, 0x0a, 0xe9, 0x0a])); // "ST\r\n", then "é\n" in latin1
  far.write('this line is far too long for sixteen\r\nNOOP\r\na\0b\r\nc\rd\r\n');
  far.end();
  await r.until(7);
  assert.deepEqual(r.events, [
    { kind: 'line', line: 'PWD' },
    { kind: 'line', line: 'SYST' },
    { kind: 'line', line: '\u00e9' },
    { kind: 'tooLong' },
    { kind: 'line', line: 'NOOP' },
    { kind: 'invalid' },
    { kind: 'invalid' },
  ]);
  await r.until(8);
  assert.deepEqual(r.events[7], { kind: 'end' }, 'the end comes once, after the last line');
  near.destroy();
});

test('hold() keeps lines, in order, until resume(); the end waits behind them', async () => {
  const { near, far } = await pair();
  const reader = LineReader.takeOver(new LineChannel(near, 'client', 2048), 2048);
  const r = recorder();
  reader.start(r.handlers);
  far.write('ONE\r\n');
  await r.until(1);
  reader.hold();
  // More than the reader keeps before it pauses the socket: nothing may be lost on the way.
  const lines = Array.from({ length: 20_000 }, (_, i) => `LINE ${i}`);
  far.end(`${lines.join('\r\n')}\r\n`);
  await once(far, 'finish');
  assert.equal(r.events.length, 1, 'nothing is delivered while held');
  reader.resume();
  await r.until(1 + lines.length + 1);
  assert.deepEqual(
    r.events.slice(1, -1).map((e) => (e.kind === 'line' ? e.line : e.kind)),
    lines,
  );
  assert.deepEqual(r.events.at(-1), { kind: 'end' });
  near.destroy();
});

test('start(handlers, true) delivers nothing, buffered lines included, until resume()', async () => {
  const { near, far } = await pair();
  const channel = new LineChannel(near, 'client', 255);
  far.write('USER a\r\nPIPELINED\r\n');
  assert.deepEqual(await channel.next(), { kind: 'line', line: 'USER a' });
  const reader = LineReader.takeOver(channel, 255);
  const r = recorder();
  reader.start(r.handlers, true);
  far.write('NEXT\r\n');
  far.end();
  await once(near, 'end');
  assert.equal(r.events.length, 0);
  reader.resume();
  await r.until(3);
  assert.deepEqual(r.events, [{ kind: 'line', line: 'PIPELINED' }, { kind: 'line', line: 'NEXT' }, { kind: 'end' }]);
  near.destroy();
});

test('a socket read through the onread hook is taken over with the bytes its channel held', async () => {
  const hook = new ReadHook();
  const { near, far } = await pair(hook);
  const channel = new LineChannel(near, 'backend', 8192, hook);
  far.write('220 ready\r\n331 go on\r\n');
  assert.deepEqual(await channel.next(), { kind: 'line', line: '220 ready' });
  const reader = LineReader.takeOver(channel, 8192, hook);
  const r = recorder();
  reader.start(r.handlers);
  far.write('230 in\r\n');
  await r.until(2);
  assert.deepEqual(r.events, [
    { kind: 'line', line: '331 go on' },
    { kind: 'line', line: '230 in' },
  ]);
  far.resetAndDestroy();
  await r.until(3);
  assert.deepEqual(r.events[2], { kind: 'end', error: 'ECONNRESET' }, 'a reset ends the reader with the socket error');
  near.destroy();
});

test('detach() stops the delivery for good and leaves the socket to its owner', async () => {
  const { near, far } = await pair();
  const reader = LineReader.takeOver(new LineChannel(near, 'client', 255), 255);
  const r = recorder();
  reader.start(r.handlers);
  far.write('A\r\n');
  await r.until(1);
  reader.detach();
  const seen: string[] = [];
  near.on('data', (d: Buffer) => seen.push(d.toString('latin1')));
  far.end('B\r\n');
  await once(near, 'end');
  assert.deepEqual(r.events, [{ kind: 'line', line: 'A' }], 'no line and no end after detach()');
  assert.equal(seen.join(''), 'B\r\n', "the owner reads the socket's bytes itself");
  near.destroy();
});
