import { isIPv4 } from 'node:net';
import type { Peer } from '../types.js';

const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/**
 * A PROXY protocol header (haproxy's proxy-protocol.txt) telling the backend who the client is:
 * v1 is one text line, v2 a binary block (PROXY command, TCP over IPv4 or IPv6).
 */
export function proxyHeader(version: 1 | 2, peer: Peer): Buffer {
  const v4 = isIPv4(peer.clientAddress) && isIPv4(peer.localAddress);
  if (version === 1) {
    return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${peer.clientAddress} ${peer.localAddress} ${peer.clientPort} ${peer.localPort}\r\n`, 'latin1');
  }
  const addresses = v4 ? Buffer.concat([ipv4Bytes(peer.clientAddress), ipv4Bytes(peer.localAddress)]) : Buffer.concat([ipv6Bytes(peer.clientAddress), ipv6Bytes(peer.localAddress)]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(peer.clientPort, 0);
  ports.writeUInt16BE(peer.localPort, 2);
  const head = Buffer.alloc(4);
  head[0] = 0x21; // version 2, PROXY
  head[1] = v4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  head.writeUInt16BE(addresses.length + ports.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addresses, ports]);
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** Expands `::`, and maps an IPv4 address into `::ffff:a.b.c.d` when the other end is IPv6. */
function ipv6Bytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), ipv4Bytes(address)]);
  let text = address;
  let tail: Buffer = Buffer.alloc(0);
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail = ipv4Bytes(dotted[1]!);
    text = `${text.slice(0, dotted.index)}:0:0`;
  }
  const [left = '', right] = text.split('::');
  const l = left === '' ? [] : left.split(':');
  const r = right === undefined || right === '' ? [] : right.split(':');
  const groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (dotted) tail.copy(out, 12);
  return out;
}
