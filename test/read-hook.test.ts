import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ReadHook } from '../src/read-hook.js';

/**
 * Small reads of every socket go into one shared buffer (read-hook.ts); these tests keep every
 * chunk they are handed until the end, so a chunk that still pointed into that buffer would be
 * overwritten by the next socket's read and the bytes would not match.
 */
describe('ReadHook', () => {
  let server: net.Server;
  /** What each accepted connection is sent, by the first line the client writes (its index); paced or at once. */
  const payloads = new Map<number, { parts: Buffer[]; paced: boolean }>();

  before(async () => {
    // Paced: sends a connection's parts one at a time, the next when the client acknowledges a
    // chunk with a byte, so each part is a read of its own and the reads of many sockets interleave.
    server = net.createServer((socket) => {
      let payload: { parts: Buffer[]; paced: boolean } | undefined;
      let next = 0;
      socket.on('data', (data: Buffer) => {
        if (!payload) {
          payload = payloads.get(Number(data.toString('latin1').trim()))!;
          if (!payload.paced) return void socket.end(Buffer.concat(payload.parts));
        }
        if (!payload.paced || socket.writableEnded) return;
        if (next === payload.parts.length) socket.end();
        else socket.write(payload.parts[next++]!);
      });
      socket.on('error', () => {});
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  after(() => server.close());

  /**
   * Reads connection `index` through a fresh hook and returns the bytes handed over. `attach`
   * (a line channel) may keep chunks: they are kept as handed. `attachRelay` may reuse its own
   * bulk buffers once the sink returns, so the bytes are copied at once; small chunks are also
   * kept as handed and checked at the end against those copies.
   */
  async function read(index: number, relay: boolean): Promise<Buffer[]> {
    const acknowledge = payloads.get(index)!.paced;
    const hook = new ReadHook();
    const chunks: Buffer[] = [];
    const small: [Buffer, Buffer][] = [];
    const sink = (chunk: Buffer): boolean => {
      if (!relay) chunks.push(chunk);
      else {
        chunks.push(Buffer.from(chunk));
        if (chunk.length <= 512) small.push([chunk, Buffer.from(chunk)]);
      }
      if (acknowledge) socket.write('.');
      return true;
    };
    if (relay) hook.attachRelay(sink);
    else hook.attach(sink);
    const { port } = server.address() as net.AddressInfo;
    const socket = net.connect({ host: '127.0.0.1', port, onread: hook.onread });
    await once(socket, 'connect');
    socket.resume(); // with onread nothing reads the stream: it must flow for 'end'
    socket.write(`${index}\n`);
    await once(socket, 'end');
    socket.destroy();
    for (const [handed, copy] of small) assert.ok(handed.equals(copy), `a small chunk of socket ${index} changed after it was handed over`);
    // Kept chunks are joined only once every socket is done: one still pointing into a shared
    // buffer has been read over by then.
    return chunks;
  }

  for (const relay of [false, true]) {
    it(`hands each of many concurrent sockets exactly its own small chunks (${relay ? 'attachRelay' : 'attach'})`, async () => {
      const sockets = 40;
      for (let i = 0; i < sockets; i++) payloads.set(i, { paced: true, parts: Array.from({ length: 30 }, (_, k) => Buffer.from(`socket ${i} part ${k} ${'x'.repeat(k * 7)}\r\n`)) });
      const got = await Promise.all(Array.from({ length: sockets }, (_, i) => read(i, relay)));
      for (let i = 0; i < sockets; i++) assert.deepEqual(Buffer.concat(got[i]!), Buffer.concat(payloads.get(i)!.parts), `socket ${i}`);
    });
  }

  it('keeps bulk bytes exact while its buffers grow from the shared small one and shrink back', async () => {
    // Small, then bulk (full reads grow the buffer), then small again (it shrinks back to the shared one).
    const parts = [Buffer.from('hello\r\n'), randomBytes(3 * 1024 * 1024), Buffer.from('small again\r\n'), randomBytes(100_000), Buffer.from('bye\r\n')];
    payloads.set(1000, { paced: false, parts });
    payloads.set(1001, { paced: false, parts });
    const [kept, relayed] = await Promise.all([read(1000, false), read(1001, true)]);
    assert.ok(Buffer.concat(kept).equals(Buffer.concat(parts)), 'kept chunks match');
    assert.ok(Buffer.concat(relayed).equals(Buffer.concat(parts)), 'relayed chunks match');
  });
});
