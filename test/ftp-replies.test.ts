import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { formatHostPort, parseEprt, parseEpsvReply, parseHostPort, parsePasvReply } from '../proxies/ftp/addresses.js';
import { ReplyFramer, readReply } from '../proxies/ftp/replies.js';
import { BackendError } from '../src/errors.js';
import { LineChannel } from '../src/line-channel.js';
import { PassivePorts } from '../src/port-range.js';

describe('FTP reply framing (RFC 959 §4.2)', () => {
  test('single-line and multi-line replies; inner lines may start with digits', () => {
    const f = new ReplyFramer();
    assert.deepEqual(f.push('200 OK'), { code: 200, text: '200 OK\r\n' });
    assert.deepEqual(f.push('226'), { code: 226, text: '226\r\n' });
    assert.equal(f.push('220-Welcome'), undefined);
    assert.equal(f.push('text mentioning 220 ends nothing'), undefined);
    assert.deepEqual(f.push('220 ready'), { code: 220, text: '220-Welcome\r\ntext mentioning 220 ends nothing\r\n220 ready\r\n' });
    const f2 = new ReplyFramer();
    assert.equal(f2.push('211-Features:'), undefined);
    assert.equal(f2.push(' EPSV'), undefined);
    assert.equal(f2.push('123 another code inside'), undefined);
    assert.equal(f2.push('211-still going'), undefined);
    assert.deepEqual(f2.push('211 End'), { code: 211, text: '211-Features:\r\n EPSV\r\n123 another code inside\r\n211-still going\r\n211 End\r\n' });
  });

  test('a line that cannot start a reply, or an endless reply, is a BackendError', () => {
    assert.throws(() => new ReplyFramer().push('hello'), BackendError);
    assert.throws(() => new ReplyFramer().push('600 no such class'), BackendError);
    const f = new ReplyFramer();
    f.push('220-start');
    assert.throws(() => {
      for (let i = 0; i < 10_000; i++) f.push(`line ${i} `.padEnd(80, 'x'));
    }, BackendError);
  });

  test('a multi-line reply split across TCP segments is one reply', async () => {
    const server = net.createServer(async (s) => {
      for (const piece of ['22', '0-Wel', 'come\r', '\n220', '-more\r\n2', '20 ready\r', '\n331 next\r\n']) {
        s.write(piece);
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    try {
      const channel = new LineChannel(socket, 'backend', 8192);
      const framer = new ReplyFramer();
      assert.deepEqual(await readReply(channel, framer, 2_000), { code: 220, text: '220-Welcome\r\n220-more\r\n220 ready\r\n' });
      assert.deepEqual(await readReply(channel, framer, 2_000), { code: 331, text: '331 next\r\n' });
    } finally {
      socket.destroy();
      server.close();
    }
  });
});

describe('FTP data addresses', () => {
  test('PORT / 227 host-port pairs', () => {
    assert.deepEqual(parseHostPort('127,0,0,1,78,32'), { host: '127.0.0.1', port: 20000 });
    assert.equal(parseHostPort('127,0,0,1,78'), undefined);
    assert.equal(parseHostPort('127,0,0,256,1,1'), undefined);
    assert.equal(formatHostPort('192.0.2.7', 20000), '192,0,2,7,78,32');
    assert.deepEqual(parsePasvReply('227 Entering Passive Mode (10,0,0,1,4,1).'), { host: '10.0.0.1', port: 1025 });
    assert.deepEqual(parsePasvReply('227 =10,0,0,1,4,1'), { host: '10.0.0.1', port: 1025 }, 'RFC 1123: scan for the numbers');
  });

  test('EPSV replies and EPRT arguments (RFC 2428)', () => {
    assert.equal(parseEpsvReply('229 Entering Extended Passive Mode (|||6446|)'), 6446);
    assert.equal(parseEpsvReply('229 EPSV OK (!!!6446!)'), 6446);
    assert.equal(parseEpsvReply('229 (|||99999|)'), undefined);
    assert.deepEqual(parseEprt('|1|132.235.1.2|6275|'), { family: 4, host: '132.235.1.2', port: 6275 });
    assert.deepEqual(parseEprt('|2|::1|5282|'), { family: 6, host: '::1', port: 5282 });
    assert.equal(parseEprt('|1|::1|5282|'), undefined);
    assert.equal(parseEprt('|3|x|1|'), undefined);
    assert.equal(parseEprt('|1|1.2.3.4|0|'), undefined);
  });
});

describe('passive port range', () => {
  test('skips ports taken elsewhere, wraps around, and gives each port back when its server closes', async () => {
    const taken = net.createServer().listen(29990, '127.0.0.1');
    await once(taken, 'listening');
    const ports = new PassivePorts({ from: 29990, to: 29992 });
    const servers = [net.createServer(), net.createServer()];
    try {
      assert.deepEqual([await ports.listen(servers[0]!, '127.0.0.1'), await ports.listen(servers[1]!, '127.0.0.1')], [29991, 29992]);
      assert.equal(ports.inUse, 2);
      await assert.rejects(ports.listen(net.createServer(), '127.0.0.1'), /no free port/);
      await new Promise((resolve) => servers[0]!.close(resolve));
      assert.equal(ports.inUse, 1);
      assert.equal(await ports.listen((servers[0] = net.createServer()), '127.0.0.1'), 29991);
    } finally {
      for (const s of [...servers, taken]) s.close();
    }
  });
});
