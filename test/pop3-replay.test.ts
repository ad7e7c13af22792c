import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startFakeBackend } from './support/fake-backend.js';
import { startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { RawClient } from './support/raw-client.js';

/**
 * A scripted POP3 backend that records each TCP segment it reads, so a test can tell pipelined
 * commands (one segment) from lock-step ones. `pipelining` decides what its CAPA advertises.
 */
function scriptedBackend(pipelining: boolean, segments: string[][]) {
  return (socket: net.Socket) => {
    const mine: string[] = [];
    segments.push(mine);
    socket.write('+OK scripted\r\n');
    socket.on('data', (chunk: Buffer) => {
      const text = chunk.toString('latin1');
      mine.push(text);
      for (const line of text.split('\r\n').filter((l) => l.length > 0)) {
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'CAPA') socket.write(`+OK\r\nUSER\r\n${pipelining ? 'PIPELINING\r\n' : ''}.\r\n`);
        else if (verb === 'USER') socket.write('+OK\r\n');
        else if (verb === 'PASS') socket.write(line === 'PASS right' ? '+OK in\r\n' : '-ERR [AUTH] no\r\n');
        else if (verb === 'QUIT') socket.end('+OK bye\r\n');
        else socket.write('-ERR\r\n');
      }
    });
  };
}

async function logIn(port: number, password: string): Promise<string> {
  const client = await RawClient.connect(port);
  await client.line();
  await client.command('USER alice@a.example');
  const reply = await client.command(`PASS ${password}`);
  if (reply.startsWith('+OK')) await client.command('QUIT');
  client.close();
  await client.closed;
  return reply;
}

for (const pipelining of [true, false]) {
  describe(`login replay to a backend ${pipelining ? 'that advertises' : 'without'} PIPELINING`, () => {
    const segments: string[][] = [];
    let fake: Awaited<ReturnType<typeof startFakeBackend>>;
    let env: TwoTenants;
    before(async () => {
      fake = await startFakeBackend(scriptedBackend(pipelining, segments));
      env = await startTwoTenants({ tenantPatch: (t) => (t[0]!.backends.pop3 = [{ host: '127.0.0.1', port: fake.port }]) });
    });
    after(async () => {
      await env.close();
      await fake.close();
    });

    test('the first login asks CAPA once; later logins reuse the answer', async () => {
      assert.equal(await logIn(env.port, 'right'), '+OK in');
      assert.equal(await logIn(env.port, 'right'), '+OK in');
      const capas = segments.flat().filter((s) => s.startsWith('CAPA'));
      assert.equal(capas.length, 1);
      const second = segments[1]!;
      if (pipelining) {
        assert.equal(second[0], 'USER alice\r\nPASS right\r\n');
      } else {
        // Lock-step: PASS only after the USER reply, each in its own segment.
        assert.deepEqual(second.slice(0, 2), ['USER alice\r\n', 'PASS right\r\n']);
      }
    });

    test('a wrong password is still the uniform failure', async () => {
      assert.equal(await logIn(env.port, 'wrong'), '-ERR [AUTH] Authentication failed');
    });
  });
}
