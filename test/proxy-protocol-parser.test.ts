import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeProxyHeader, parseProxyHeader, V1_MAX_LENGTH, V2_MAX_BLOCK_LENGTH, V2_SIGNATURE } from '../src/proxy-protocol.js';

const v1 = (line: string) => Buffer.from(line, 'latin1');

/** A v2 header: version/command byte, family byte, then the block (addresses and TLVs). */
function v2(versionCommand: number, family: number, block: Buffer, declaredLength = block.length): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = family;
  fixed.writeUInt16BE(declaredLength, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, block]);
}

const ipv4Block = Buffer.from([192, 0, 2, 7, 10, 0, 0, 1, 0xc3, 0x50, 0x00, 0x6e]); // 192.0.2.7:50000 → 10.0.0.1:110

function invalidReason(data: Buffer): string {
  const result = parseProxyHeader(data);
  assert.equal(result.status, 'invalid', `expected invalid, got ${JSON.stringify(result)}`);
  return (result as { reason: string }).reason;
}

describe('PROXY protocol parser', () => {
  test('v1 TCP4 and TCP6: both ends, and the length up to the CRLF only', () => {
    const data = Buffer.concat([v1('PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\r\n'), v1('USER alice\r\n')]);
    assert.deepEqual(parseProxyHeader(data), {
      status: 'complete',
      header: { version: 1, command: 'proxy', source: { address: '192.0.2.7', port: 50000 }, destination: { address: '10.0.0.1', port: 110 }, length: 41 },
    });
    const six = parseProxyHeader(v1('PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n'));
    assert.equal(six.status, 'complete');
    assert.deepEqual(six.status === 'complete' && six.header.source, { address: '2001:db8::7', port: 65535 });
  });

  test('v1 UNKNOWN: complete, no addresses (the connection\'s own stand)', () => {
    const result = parseProxyHeader(v1('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n'));
    assert.deepEqual(result, { status: 'complete', header: { version: 1, command: 'proxy', length: 35 } });
  });

  test('v1 malformed: bad signature, wrong family, bad port, no CR, over-long, extra fields', () => {
    assert.equal(invalidReason(v1('PROXX TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), 'bad signature');
    assert.equal(invalidReason(v1('USER alice\r\n')), 'bad signature');
    assert.match(invalidReason(v1('PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n')), /not of family TCP4/);
    assert.match(invalidReason(v1('PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n')), /not of family TCP6/);
    assert.match(invalidReason(v1('PROXY UDP4 192.0.2.7 10.0.0.1 1 2\r\n')), /family "UDP4"/);
    assert.match(invalidReason(v1('PROXY TCP4 192.0.2.7 10.0.0.1 65536 2\r\n')), /port/);
    assert.match(invalidReason(v1('PROXY TCP4 192.0.2.7 10.0.0.1 0110 2\r\n')), /port/);
    assert.match(invalidReason(v1('PROXY TCP4 192.0.2.7 10.0.0.1 1 2\n')), /CRLF/);
    assert.match(invalidReason(v1('PROXY TCP4 192.0.2.7 10.0.0.1 1 2 3\r\n')), /6 fields/);
    assert.match(invalidReason(v1('PROXY TCP4  192.0.2.7 10.0.0.1 1 2\r\n')), /6 fields/);
    assert.match(invalidReason(v1(`PROXY TCP4 ${'1'.repeat(V1_MAX_LENGTH)}`)), /longer than 107/);
  });

  test('v1 truncated and split: incomplete until the CRLF, whatever the cut', () => {
    const whole = v1('PROXY TCP4 192.0.2.7 10.0.0.1 50000 110\r\n');
    for (let cut = 1; cut < whole.length; cut++) assert.deepEqual(parseProxyHeader(whole.subarray(0, cut)), { status: 'incomplete' }, `cut at ${cut}`);
    assert.equal(parseProxyHeader(whole).status, 'complete');
  });

  test('v2 PROXY over IPv4 and IPv6 (mapped IPv4 read as IPv4)', () => {
    assert.deepEqual(parseProxyHeader(v2(0x21, 0x11, ipv4Block)), {
      status: 'complete',
      header: { version: 2, command: 'proxy', source: { address: '192.0.2.7', port: 50000 }, destination: { address: '10.0.0.1', port: 110 }, length: 28 },
    });
    const six = Buffer.alloc(36);
    six.set([0x20, 0x01, 0x0d, 0xb8], 0);
    six[15] = 7; // 2001:db8::7
    six.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1], 16); // ::ffff:10.0.0.1
    six.writeUInt16BE(4242, 32);
    six.writeUInt16BE(110, 34);
    const result = parseProxyHeader(v2(0x21, 0x21, six));
    assert.equal(result.status, 'complete');
    assert.deepEqual(result.status === 'complete' && [result.header.source, result.header.destination], [
      { address: '2001:db8::7', port: 4242 },
      { address: '10.0.0.1', port: 110 },
    ]);
  });

  test('v2 TLVs after the addresses are skipped; the header ends where its length says', () => {
    const tlvs = Buffer.from([0x04, 0x00, 0x03, 0, 0, 0, /* NOOP */ 0x01, 0x00, 0x02, 0x68, 0x32 /* ALPN "h2" */]);
    const data = Buffer.concat([v2(0x21, 0x11, Buffer.concat([ipv4Block, tlvs])), v1('+OK')]);
    const result = parseProxyHeader(data);
    assert.equal(result.status, 'complete');
    assert.equal(result.status === 'complete' && result.header.length, 16 + 12 + tlvs.length);
    assert.match(invalidReason(v2(0x21, 0x11, Buffer.concat([ipv4Block, Buffer.from([0x01, 0x00, 0x09, 0x68])]))), /overruns/);
    assert.match(invalidReason(v2(0x21, 0x11, Buffer.concat([ipv4Block, Buffer.from([0x01, 0x00])]))), /truncated/);
  });

  test('v2 LOCAL (a balancer\'s health check): complete, no client, block skipped', () => {
    assert.deepEqual(parseProxyHeader(v2(0x20, 0x11, ipv4Block)), { status: 'complete', header: { version: 2, command: 'local', length: 28 } });
    assert.deepEqual(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))), { status: 'complete', header: { version: 2, command: 'local', length: 16 } });
  });

  test('v2 malformed: signature, version, command, family, short block, oversize', () => {
    const badSignature = v2(0x21, 0x11, ipv4Block);
    badSignature[6] = 0x01;
    assert.equal(invalidReason(badSignature), 'bad signature');
    assert.match(invalidReason(v2(0x11, 0x11, ipv4Block)), /version 1/);
    assert.match(invalidReason(v2(0x22, 0x11, ipv4Block)), /command 2/);
    assert.match(invalidReason(v2(0x21, 0x12, ipv4Block)), /0x12 is not a stream one/); // UDP over IPv4
    assert.match(invalidReason(v2(0x21, 0x41, ipv4Block)), /0x41/);
    assert.match(invalidReason(v2(0x21, 0x21, ipv4Block)), /too short for IPv6/);
    assert.match(invalidReason(v2(0x21, 0x11, Buffer.alloc(8))), /too short for IPv4/);
    assert.match(invalidReason(v2(0x21, 0x11, Buffer.alloc(0), V2_MAX_BLOCK_LENGTH + 1)), /at most 2048/);
  });

  test('v2 truncated and split: incomplete at every cut before its last byte', () => {
    const whole = v2(0x21, 0x11, Buffer.concat([ipv4Block, Buffer.from([0x04, 0x00, 0x01, 0x00])]));
    for (let cut = 1; cut < whole.length; cut++) assert.deepEqual(parseProxyHeader(whole.subarray(0, cut)), { status: 'incomplete' }, `cut at ${cut}`);
  });

  test('what we send parses back to the same ends (v1, v2; IPv4, IPv6, mixed)', () => {
    const peers = [
      { clientAddress: '192.0.2.7', clientPort: 50000, localAddress: '10.0.0.1', localPort: 110 },
      { clientAddress: '2001:db8::7', clientPort: 1, localAddress: '2001:db8:0:1::1', localPort: 995 },
      { clientAddress: '192.0.2.7', clientPort: 2, localAddress: '2001:db8::1', localPort: 21 },
    ];
    for (const version of ['v1', 'v2'] as const) {
      for (const peer of peers) {
        const result = parseProxyHeader(encodeProxyHeader(version, peer));
        assert.equal(result.status, 'complete', `${version} ${peer.clientAddress}`);
        if (result.status !== 'complete') continue;
        // A mixed pair goes out as TCP6 with IPv4 mapped; v2 reads a mapped address back as IPv4, v1 keeps the mapped text.
        const unmapped = (a: string) => a.replace(/^::ffff:/, '');
        assert.deepEqual([unmapped(result.header.source!.address), result.header.source!.port, result.header.destination!.address, result.header.destination!.port], [peer.clientAddress, peer.clientPort, peer.localAddress, peer.localPort]);
      }
    }
  });
});
