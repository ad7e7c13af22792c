import { isIPv4, isIPv6 } from 'node:net';
import type { Peer } from '../proxies/types.js';

// The PROXY protocol, versions 1 and 2 (haproxy's doc/proxy-protocol.txt): a load balancer opens
// each connection with one header naming the client it relays. Both directions live here:
// parseProxyHeader for what a trusted balancer sends us, encodeProxyHeader for what we send a backend.

/** The 12 bytes that open every v2 header (chosen to be invalid in any text protocol). */
export const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** §2.1: the longest v1 line, "PROXY UNKNOWN" with two IPv6 addresses and ports, CRLF included. */
export const V1_MAX_LENGTH = 107;
/** v2 fixed part: signature, version/command, family, length. */
const V2_FIXED_LENGTH = 16;
/**
 * Our cap on a v2 address block with its TLVs. The format allows 65,535 bytes; real balancers send
 * a few hundred at most (AWS, GCP and HAProxy TLVs included), and a trusted peer gone wrong must
 * not make us buffer 64 KiB per connection.
 */
export const V2_MAX_BLOCK_LENGTH = 2_048;

/** One end of the relayed connection. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** A parsed header. Without `source` (LOCAL, UNKNOWN, UNSPEC, AF_UNIX) the connection's own ends stand. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  readonly command: 'proxy' | 'local';
  readonly source?: Endpoint;
  readonly destination?: Endpoint;
  /** Bytes the header took, TLVs included: what follows is the client's. */
  readonly length: number;
}

export type ParseResult =
  | { readonly status: 'incomplete' }
  | { readonly status: 'invalid'; readonly reason: string }
  | { readonly status: 'complete'; readonly header: ProxyHeader };

const incomplete: ParseResult = { status: 'incomplete' };
const invalid = (reason: string): ParseResult => ({ status: 'invalid', reason });

/** Whether `data` could still be the start of `prefix`, and is not yet all of it. */
function startsLike(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return data.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Reads a PROXY header at the start of `data` (all bytes received so far). 'incomplete': wait
 * for more bytes; 'invalid': close the connection; 'complete': `header.length` bytes were the header.
 */
export function parseProxyHeader(data: Buffer): ParseResult {
  if (data.length === 0) return incomplete;
  if (data[0] === V1_PREFIX[0]) {
    if (!startsLike(data, V1_PREFIX)) return invalid('bad signature');
    return parseV1(data);
  }
  if (data[0] === V2_SIGNATURE[0]) {
    if (!startsLike(data, V2_SIGNATURE)) return invalid('bad signature');
    return parseV2(data);
  }
  return invalid('bad signature');
}

const PORT = /^(0|[1-9]\d{0,4})$/;

function parseV1(data: Buffer): ParseResult {
  const limit = Math.min(data.length, V1_MAX_LENGTH);
  const lf = data.subarray(0, limit).indexOf(0x0a);
  if (lf < 0) return data.length >= V1_MAX_LENGTH ? invalid(`v1 line longer than ${V1_MAX_LENGTH} bytes`) : incomplete;
  if (lf === 0 || data[lf - 1] !== 0x0d) return invalid('v1 line not ended by CRLF');
  const line = data.toString('latin1', 0, lf - 1);
  const length = lf + 1;
  const fields = line.split(' ');
  if (fields[1] === 'UNKNOWN') return { status: 'complete', header: { version: 1, command: 'proxy', length } };
  if (fields.length !== 6) return invalid('v1 line needs 6 fields');
  const [, family, src = '', dst = '', sport = '', dport = ''] = fields;
  const isFamily = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : undefined;
  if (!isFamily) return invalid(`v1 family "${family?.slice(0, 8)}" is not TCP4, TCP6 or UNKNOWN`);
  if (!isFamily(src) || !isFamily(dst)) return invalid(`v1 address not of family ${family}`);
  if (!PORT.test(sport) || !PORT.test(dport) || Number(sport) > 65535 || Number(dport) > 65535) return invalid('v1 port not a number from 0 to 65535');
  return { status: 'complete', header: { version: 1, command: 'proxy', source: { address: src, port: Number(sport) }, destination: { address: dst, port: Number(dport) }, length } };
}

function parseV2(data: Buffer): ParseResult {
  if (data.length < V2_FIXED_LENGTH) return incomplete;
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return invalid(`v2 version ${versionCommand >> 4}`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid(`v2 command ${command}`);
  const family = data[13]!;
  const blockLength = data.readUInt16BE(14);
  if (blockLength > V2_MAX_BLOCK_LENGTH) return invalid(`v2 block of ${blockLength} bytes (at most ${V2_MAX_BLOCK_LENGTH})`);
  const length = V2_FIXED_LENGTH + blockLength;
  if (data.length < length) return incomplete;
  const block = data.subarray(V2_FIXED_LENGTH, length);
  // §2.2: a LOCAL connection (the balancer's own health check) carries no client; its block is skipped.
  if (command === 0) return { status: 'complete', header: { version: 2, command: 'local', length } };
  let addressLength: number;
  let source: Endpoint | undefined;
  let destination: Endpoint | undefined;
  switch (family) {
    case 0x00: // AF_UNSPEC: nothing to use
      addressLength = 0;
      break;
    case 0x11: // TCP over IPv4
      addressLength = 12;
      if (block.length < addressLength) return invalid('v2 block too short for IPv4 addresses');
      source = { address: ipv4Text(block, 0), port: block.readUInt16BE(8) };
      destination = { address: ipv4Text(block, 4), port: block.readUInt16BE(10) };
      break;
    case 0x21: // TCP over IPv6
      addressLength = 36;
      if (block.length < addressLength) return invalid('v2 block too short for IPv6 addresses');
      source = { address: ipv6Text(block, 0), port: block.readUInt16BE(32) };
      destination = { address: ipv6Text(block, 16), port: block.readUInt16BE(34) };
      break;
    case 0x31: // AF_UNIX stream: no address we could judge or log as an IP
      addressLength = 216;
      if (block.length < addressLength) return invalid('v2 block too short for unix addresses');
      break;
    default:
      return invalid(`v2 family/transport 0x${family.toString(16).padStart(2, '0')} is not a stream one`);
  }
  const tlvProblem = checkTlvs(block.subarray(addressLength));
  if (tlvProblem) return invalid(tlvProblem);
  return { status: 'complete', header: { version: 2, command: 'proxy', source, destination, length } };
}

/** §2.2.7: TLVs (type, 16-bit length, value) fill the rest of the block exactly; we use none of them. */
function checkTlvs(tlvs: Buffer): string | undefined {
  let at = 0;
  while (at < tlvs.length) {
    if (at + 3 > tlvs.length) return 'v2 TLV header truncated';
    at += 3 + tlvs.readUInt16BE(at + 1);
    if (at > tlvs.length) return 'v2 TLV value overruns the block';
  }
  return undefined;
}

function ipv4Text(block: Buffer, at: number): string {
  return `${block[at]}.${block[at + 1]}.${block[at + 2]}.${block[at + 3]}`;
}

/** Compressed IPv6 text; an IPv4-mapped address as plain dotted IPv4 (what our limits and logs use). */
function ipv6Text(block: Buffer, at: number): string {
  const bytes = block.subarray(at, at + 16);
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return ipv4Text(bytes, 12);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The URL parser writes the canonical form (RFC 5952: longest zero run as "::").
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * The header we send a backend that asked for one (`sendProxyProtocol`): the client and the
 * address it dialled, from `peer`. Both IPv4: TCP4; otherwise TCP6 with IPv4 mapped.
 */
export function encodeProxyHeader(version: 'v1' | 'v2', peer: Peer): Buffer {
  const v4 = isIPv4(peer.clientAddress) && isIPv4(peer.localAddress);
  if (version === 'v1') {
    const src = v4 ? peer.clientAddress : mappedText(peer.clientAddress);
    const dst = v4 ? peer.localAddress : mappedText(peer.localAddress);
    return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${src} ${dst} ${peer.clientPort} ${peer.localPort}\r\n`, 'latin1');
  }
  const addressLength = v4 ? 12 : 36;
  const out = Buffer.alloc(V2_FIXED_LENGTH + addressLength);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = v4 ? 0x11 : 0x21;
  out.writeUInt16BE(addressLength, 14);
  if (v4) {
    ipv4Bytes(peer.clientAddress).copy(out, 16);
    ipv4Bytes(peer.localAddress).copy(out, 20);
    out.writeUInt16BE(peer.clientPort, 24);
    out.writeUInt16BE(peer.localPort, 26);
  } else {
    ipv6Bytes(peer.clientAddress).copy(out, 16);
    ipv6Bytes(peer.localAddress).copy(out, 32);
    out.writeUInt16BE(peer.clientPort, 48);
    out.writeUInt16BE(peer.localPort, 50);
  }
  return out;
}

function mappedText(address: string): string {
  return isIPv4(address) ? `::ffff:${address}` : address;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** 16 bytes of an IPv6 address (an IPv4 one mapped into ::ffff:0:0/96). */
function ipv6Bytes(address: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(address)) {
    out[10] = 0xff;
    out[11] = 0xff;
    ipv4Bytes(address).copy(out, 12);
    return out;
  }
  let text = address;
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) text = `${text.slice(0, dotted.index)}:0:0`;
  const [left = '', right] = text.split('::');
  const l = left === '' ? [] : left.split(':');
  const r = right === undefined || right === '' ? [] : right.split(':');
  const groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (dotted) ipv4Bytes(dotted[1]!).copy(out, 12);
  return out;
}

/** The peer a session should see: the header's ends where it names them, the socket's otherwise. */
export function peerFrom(header: ProxyHeader, socketPeer: Peer): Peer {
  if (!header.source || !header.destination) return socketPeer;
  return { clientAddress: header.source.address, clientPort: header.source.port, localAddress: header.destination.address, localPort: header.destination.port };
}
