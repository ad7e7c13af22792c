import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { kernelFd } from '../src/kernel-pump.js';
import { TestCa, type IssuedCertificate } from './support/certificates.js';
import { tcpPair } from './support/tcp-pair.js';

describe('kernelFd: which sockets the splice addon may take', () => {
  let ca: TestCa;
  let cert: IssuedCertificate;
  before(async () => {
    ca = await TestCa.create();
    cert = await ca.issue(['127.0.0.1']);
  });
  after(async () => {
    await ca.remove();
  });

  test('a connected, unread plain TCP socket: its fd, both ends', async () => {
    const pair = await tcpPair();
    assert.ok(Number.isInteger(kernelFd(pair.dialled)) && kernelFd(pair.dialled)! >= 0);
    assert.ok(Number.isInteger(kernelFd(pair.accepted)) && kernelFd(pair.accepted)! >= 0);
    assert.notEqual(kernelFd(pair.dialled), kernelFd(pair.accepted));
    pair.close();
  });

  test('a socket Node is reading, or holding read bytes, or with unsent bytes: no', async () => {
    const pair = await tcpPair();
    pair.accepted.resume(); // libuv now reads it: a thread must not
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(kernelFd(pair.accepted), undefined);
    // Bytes that reached Node's buffer would be overtaken by spliced ones.
    pair.accepted.pause();
    pair.dialled.write('early bytes');
    await once(pair.accepted, 'readable');
    assert.ok(pair.accepted.readableLength > 0);
    assert.equal(kernelFd(pair.accepted), undefined);
    pair.close();
  });

  test('an ended or destroyed socket: no', async () => {
    const pair = await tcpPair();
    pair.dialled.end();
    assert.equal(kernelFd(pair.dialled), undefined);
    pair.accepted.destroy();
    assert.equal(kernelFd(pair.accepted), undefined);
    pair.close();
  });

  test('a TLS socket (FTPS data): no, its bytes need user space', async () => {
    const server = tls.createServer({ cert: cert.pem, key: readFileSync(cert.key) }, (s) => s.on('error', () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = tls.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, ca: ca.pem });
    await once(client, 'secureConnect');
    client.pause();
    assert.equal(kernelFd(client), undefined);
    client.destroy();
    server.close();
  });
});
