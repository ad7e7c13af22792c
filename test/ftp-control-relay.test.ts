import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startFakeBackend } from './support/fake-backend.js';
import { startFtpTwoTenants, type FtpTwoTenants } from './support/ftp-fixtures.js';
import { ftpCommand, ftpLogin, readFtpReply } from './support/ftp-raw.js';
import { RawClient } from './support/raw-client.js';

/** UTF-8 text as the raw client's latin1 lines show its bytes. */
const bytesOf = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

/**
 * A scripted FTP server: it greets, answers each command line from `answers` (by verb), and
 * records the lines in the order it read them. QUIT gets 221 and a close from the server.
 */
function scriptedFtp(seen: string[]): (socket: net.Socket) => void {
  const answers: Record<string, string> = {
    USER: '331 Password please.\r\n',
    PASS: `230-${'Grüße'}\r\n230 Logged in.\r\n`,
    PWD: `257 "/Überall" is the current directory.\r\n`,
    NOOP: '200 NOOP.\r\n',
    SYST: '215 UNIX Type: L8\r\n',
  };
  return (socket) => {
    socket.write('220 scripted\r\n');
    let buffer = '';
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let lf = buffer.indexOf('\n'); lf >= 0; lf = buffer.indexOf('\n')) {
        const line = buffer.slice(0, lf).replace(/\r$/, '');
        buffer = buffer.slice(lf + 1);
        seen.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'QUIT') return void socket.end('221 Bye.\r\n');
        socket.write(Buffer.from(answers[verb] ?? '502 Not here.\r\n', 'utf8'));
      }
    });
  };
}

describe('FTP control relay', () => {
  let env: FtpTwoTenants;
  let backend: Awaited<ReturnType<typeof startFakeBackend>>;
  const seen: string[] = [];
  before(async () => {
    backend = await startFakeBackend(scriptedFtp(seen));
    env = await startFtpTwoTenants({
      base: 22100,
      tenantPatch: (t) => {
        t.push({ domain: 'e.example', sourceAddress: '127.0.0.5', backends: { ftp: [{ host: '127.0.0.1', port: backend.port }] } });
      },
    });
  });
  after(async () => {
    await env.close();
    await backend.close();
  });

  test('the backend’s replies reach the client byte for byte, the login verdict included', async () => {
    const { c, reply } = await ftpLogin(env.port, 'carol@e.example', 'pw');
    assert.equal(reply, `230-${bytesOf('Grüße')}\n230 Logged in.`, 'UTF-8 bytes of the 230 are not re-encoded');
    assert.equal(await ftpCommand(c, 'PWD'), bytesOf('257 "/Überall" is the current directory.'));
    assert.equal(await ftpCommand(c, 'QUIT'), '221 Bye.');
    await c.closed;
  });

  test('commands pipelined behind PASS go to the backend in order, each reply in order', async () => {
    seen.length = 0;
    const c = await RawClient.connect(env.port);
    await readFtpReply(c);
    assert.equal(await ftpCommand(c, 'USER carol@e.example'), '331 Password required.');
    c.send('PASS pw\r\nSYST\r\nNOOP\r\nPWD\r\nQUIT\r\n');
    assert.match(await readFtpReply(c), /^230-/);
    assert.equal(await readFtpReply(c), '215 UNIX Type: L8');
    assert.equal(await readFtpReply(c), '200 NOOP.');
    assert.match(await readFtpReply(c), /^257 /);
    assert.equal(await readFtpReply(c), '221 Bye.');
    await c.closed;
    assert.deepEqual(seen, ['USER carol', 'PASS pw', 'SYST', 'NOOP', 'PWD', 'QUIT']);
  });

  test('a session that never opens a data connection leaves nothing behind', async () => {
    const { c } = await ftpLogin(env.port, 'carol@e.example', 'pw');
    assert.equal(await ftpCommand(c, 'NOOP'), '200 NOOP.');
    assert.equal(await ftpCommand(c, 'QUIT'), '221 Bye.');
    await c.closed;
    await env.listener.whenIdle();
    assert.equal(env.listener.passivePorts!.inUse, 0);
    await backend.closedAll();
    assert.equal(backend.open(), 0);
  });
});
