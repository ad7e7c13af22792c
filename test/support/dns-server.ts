import dgram from 'node:dgram';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';

/** What the test server answers for one name: MX / A records, or an error code. */
export interface Zone {
  readonly mx?: ReadonlyArray<{ preference: number; exchange: string }>;
  readonly a?: readonly string[];
  readonly rcode?: 'NXDOMAIN' | 'SERVFAIL';
}

/** A UDP DNS server on 127.0.0.1:0 answering from `zones` (name → records); other names are NXDOMAIN. */
export async function startDnsServer(zones: Record<string, Zone>): Promise<{ address: string; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, peer) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (!question) return;
    const zone = zones[question.name.toLowerCase()];
    // dns-packet encodes the response code from the low 4 bits of `flags` only.
    const rcode = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 }[zone ? (zone.rcode ?? 'NOERROR') : 'NXDOMAIN'];
    const answers: dnsPacket.Answer[] = [];
    if (zone && !zone.rcode && question.type === 'MX') for (const mx of zone.mx ?? []) answers.push({ type: 'MX', name: question.name, ttl: 60, data: mx });
    if (zone && !zone.rcode && question.type === 'A') for (const a of zone.a ?? []) answers.push({ type: 'A', name: question.name, ttl: 60, data: a });
    const reply = dnsPacket.encode({ id: query.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode, questions: [question], answers } as dnsPacket.Packet);
    socket.send(reply, peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    address: `127.0.0.1:${(socket.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
