import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, test } from 'node:test';
import { parseConfig } from '../src/config.js';
import { encodeProxyHeader, parseProxyHeader, type ProxyHeader, V2_SIGNATURE } from '../src/proxy-protocol.js';
import { PASSWORD_A, startTwoTenants, type TwoTenants } from './support/fixtures.js';
import { FTP_PASSWORD_A, startFtpTwoTenants } from './support/ftp-fixtures.js';
import { epsvPort, ftpCommand, readAll, readFtpReply } from './support/ftp-raw.js';
import { sampleValue } from './support/prometheus.js';
import { RawClient } from './support/raw-client.js';

/** The balancer's address in these tests; the clients it relays are in 192.0.2.0/24 (TEST-NET-1). */
const BALANCER = '127.0.0.9';
const realClient = { clientAddress: '192.0.2.7', clientPort: 50_000, localAddress: '198.51.100.1', localPort: 110 };

function behindBalancer(extra: Record<string, unknown> = {}) {
  return (raw: Record<string, any>) => {
    raw.listeners[0].proxyProtocol = { trusted: [`${BALANCER}/32`], ...extra };
  };
}

/** Logs in as alice@a.example on an open session that has been greeted. */
async function logIn(c: RawClient): Promise<void> {
  assert.match(await c.command('USER alice@a.example'), /^\+OK/);
  assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
}

async function headerRefusals(env: TwoTenants): Promise<number | undefined> {
  return sampleValue(await env.concierge.metrics.text(), 'concierge_connections_refused_total', { protocol: 'pop3', limit: 'proxyHeader' });
}

function record(env: TwoTenants, message: string): Record<string, unknown> | undefined {
  return env.logs.records().find((r) => r.message === message);
}

describe('PROXY protocol, inbound', () => {
  test('v1 from a trusted balancer: the named client logs in, and logs show it with the balancer as "via"', async () => {
    const env = await startTwoTenants({ patch: behindBalancer() });
    try {
      const c = await RawClient.connect(env.port, { localAddress: BALANCER });
      c.send(encodeProxyHeader('v1', realClient));
      assert.match(await c.line(), /^\+OK/);
      await logIn(c);
      assert.match(await c.command('QUIT'), /^\+OK/);
      await c.closed;
      await env.concierge.listeners[0]!.whenIdle();
      const connected = record(env, 'connected')!;
      assert.equal(connected.client, '192.0.2.7:50000');
      assert.match(String(connected.via), /^127\.0\.0\.9:\d+$/);
      assert.equal(record(env, 'login ok')?.client, '192.0.2.7:50000');
    } finally {
      await env.close();
    }
  });

  test('v2 split across segments, the first command in the same segment as its end: served in order', async () => {
    const env = await startTwoTenants({ patch: behindBalancer() });
    try {
      const c = await RawClient.connect(env.port, { localAddress: BALANCER });
      c.socket.setNoDelay(true);
      const header = encodeProxyHeader('v2', realClient);
      c.send(header.subarray(0, 5));
      await new Promise((resolve) => setImmediate(resolve)); // a chance for separate segments; the parser test covers every cut
      c.send(header.subarray(5, 14));
      await new Promise((resolve) => setImmediate(resolve));
      c.send(Buffer.concat([header.subarray(14), Buffer.from('USER alice@a.example\r\n')]));
      assert.match(await c.line(), /^\+OK/); // greeting
      assert.match(await c.line(), /^\+OK/); // USER
      assert.match(await c.command(`PASS ${PASSWORD_A}`), /^\+OK/);
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      assert.equal(record(env, 'connected')?.client, '192.0.2.7:50000');
    } finally {
      await env.close();
    }
  });

  test('limits judge the named client: denyFrom refuses it, another client through the same balancer is served', async () => {
    const env = await startTwoTenants({
      patch: (raw) => {
        behindBalancer()(raw);
        raw.limits.denyFrom = ['192.0.2.66'];
        raw.limits.maxConnectionsPerIp = 1;
      },
    });
    try {
      const denied = await RawClient.connect(env.port, { localAddress: BALANCER });
      denied.send(encodeProxyHeader('v2', { ...realClient, clientAddress: '192.0.2.66' }));
      assert.equal(await denied.line(), '-ERR [SYS/TEMP] Too many connections, try again later');
      await denied.closed;
      // Two clients through one balancer connection address: maxConnectionsPerIp counts each client, not the balancer.
      const first = await RawClient.connect(env.port, { localAddress: BALANCER });
      first.send(encodeProxyHeader('v1', realClient));
      assert.match(await first.line(), /^\+OK/);
      const second = await RawClient.connect(env.port, { localAddress: BALANCER });
      second.send(encodeProxyHeader('v1', { ...realClient, clientAddress: '192.0.2.8' }));
      assert.match(await second.line(), /^\+OK/);
      first.close();
      second.close();
      await env.concierge.listeners[0]!.whenIdle();
      const text = await env.concierge.metrics.text();
      assert.equal(sampleValue(text, 'concierge_connections_refused_total', { limit: 'denyFrom' }), 1);
      assert.equal(sampleValue(text, 'concierge_connections_refused_total', { limit: 'maxConnectionsPerIp' }), undefined);
    } finally {
      await env.close();
    }
  });

  test('a trusted peer without a header, or with a malformed one, is closed unanswered, logged and counted', async () => {
    const env = await startTwoTenants({ patch: behindBalancer() });
    try {
      const plain = await RawClient.connect(env.port, { localAddress: BALANCER });
      plain.send('USER alice@a.example\r\n');
      assert.equal((await plain.rest()).length, 0, 'no greeting for a connection without a header');
      const bad = await RawClient.connect(env.port, { localAddress: BALANCER });
      bad.send('PROXY TCP4 192.0.2.7 10.0.0.1 99999 110\r\n');
      assert.equal((await bad.rest()).length, 0);
      const oversize = await RawClient.connect(env.port, { localAddress: BALANCER });
      const head = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
      oversize.send(head);
      assert.equal((await oversize.rest()).length, 0);
      await env.concierge.listeners[0]!.whenIdle();
      assert.equal(await headerRefusals(env), 3);
      const reasons = env.logs
        .records()
        .filter((r) => r.message === 'connection refused')
        .map((r) => [r.level, r.reason, r.error]);
      assert.deepEqual(reasons, [
        ['warn', 'proxyHeader', 'malformed PROXY header: bad signature'],
        ['warn', 'proxyHeader', 'malformed PROXY header: v1 port not a number from 0 to 65535'],
        ['warn', 'proxyHeader', 'malformed PROXY header: v2 block of 65535 bytes (at most 2048)'],
      ]);
      assert.equal(record(env, 'connected'), undefined, 'no session began');
    } finally {
      await env.close();
    }
  });

  test('a trusted peer that sends nothing is closed after proxyProtocol.timeoutMs; one that closes mid-header is counted too', async () => {
    const env = await startTwoTenants({ patch: behindBalancer({ timeoutMs: 100 }) });
    try {
      const silent = await RawClient.connect(env.port, { localAddress: BALANCER });
      assert.equal((await silent.rest()).length, 0);
      const half = await RawClient.connect(env.port, { localAddress: BALANCER });
      half.socket.end(encodeProxyHeader('v2', realClient).subarray(0, 20));
      await half.closed;
      await env.concierge.listeners[0]!.whenIdle();
      assert.equal(await headerRefusals(env), 2);
      const errors = env.logs
        .records()
        .filter((r) => r.message === 'connection refused')
        .map((r) => r.error);
      assert.deepEqual(errors, ['no PROXY header within 100 ms', 'closed inside the PROXY header']);
    } finally {
      await env.close();
    }
  });

  test('an untrusted peer\'s bytes are the protocol\'s: a PROXY line is just a bad POP3 command', async () => {
    const env = await startTwoTenants({ patch: behindBalancer() });
    try {
      const c = await RawClient.connect(env.port, { localAddress: '127.0.0.1' });
      assert.match(await c.line(), /^\+OK/);
      assert.match(await c.command('PROXY TCP4 192.0.2.7 10.0.0.1 50000 110'), /^-ERR/);
      await logIn(c);
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      assert.match(String(record(env, 'connected')?.client), /^127\.0\.0\.1:\d+$/);
      assert.equal(await headerRefusals(env), undefined);
    } finally {
      await env.close();
    }
  });

  test('v2 LOCAL (a health check): served as the balancer itself', async () => {
    const env = await startTwoTenants({ patch: behindBalancer() });
    try {
      const c = await RawClient.connect(env.port, { localAddress: BALANCER });
      c.send(Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]));
      assert.match(await c.line(), /^\+OK/);
      c.close();
      await env.concierge.listeners[0]!.whenIdle();
      const connected = record(env, 'connected')!;
      assert.match(String(connected.client), /^127\.0\.0\.9:\d+$/);
      assert.equal(connected.via, undefined);
    } finally {
      await env.close();
    }
  });
});

/**
 * A backend that wants a PROXY header: it parses one from the first bytes, records it, and only
 * then relays to the real POP3 backend, so the greeting comes after the header or not at all.
 */
async function headerReadingBackend(target: number): Promise<{ port: number; seen: Array<{ header: ProxyHeader | string; from: string }>; close(): Promise<void> }> {
  const seen: Array<{ header: ProxyHeader | string; from: string }> = [];
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  };
  const server = net.createServer((socket) => {
    track(socket);
    let received = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const result = parseProxyHeader(received);
      if (result.status === 'incomplete') return;
      socket.off('data', onData);
      const from = socket.remoteAddress ?? '';
      if (result.status === 'invalid') {
        seen.push({ header: result.reason, from });
        return void socket.destroy();
      }
      seen.push({ header: result.header, from });
      const upstream = net.connect({ host: '127.0.0.1', port: target });
      track(upstream);
      upstream.write(received.subarray(result.header.length));
      socket.pipe(upstream);
      upstream.pipe(socket);
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('PROXY protocol, outbound (sendProxyProtocol)', () => {
  for (const version of ['v1', 'v2'] as const) {
    test(`${version}: the backend reads the header before its greeting, naming the client (the balancer's, when one relays it)`, async () => {
      let relay: Awaited<ReturnType<typeof headerReadingBackend>> | undefined;
      const env = await startTwoTenants({ patch: behindBalancer() });
      try {
        // The relay needs backend A's port: tenant a is pointed at it through a reload, as an operator would.
        relay = await headerReadingBackend(env.backendA.port);
        const raw = {
          listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }],
          tenants: [{ domain: 'a.example', sourceAddress: '127.0.0.2', backends: { pop3: [{ host: '127.0.0.1', port: relay.port, sendProxyProtocol: version }] } }],
        };
        behindBalancer()(raw); // the same listener as before: a reload that changed it would reopen it elsewhere
        await env.concierge.reloadTenants(parseConfig(raw));

        const direct = await RawClient.connect(env.port, { localAddress: '127.0.0.5' });
        assert.match(await direct.line(), /^\+OK/);
        await logIn(direct);
        direct.close();

        const relayed = await RawClient.connect(env.port, { localAddress: BALANCER });
        relayed.send(encodeProxyHeader('v1', realClient));
        assert.match(await relayed.line(), /^\+OK/);
        await logIn(relayed);
        relayed.close();
        await env.concierge.listeners[0]!.whenIdle();

        assert.equal(relay.seen.length, 2);
        const [first, second] = relay.seen as Array<{ header: ProxyHeader; from: string }>;
        assert.equal(first!.from, '127.0.0.2', 'dialled from the tenant\'s source address');
        assert.equal(first!.header.version, version === 'v1' ? 1 : 2);
        assert.deepEqual(first!.header.source?.address, '127.0.0.5');
        assert.equal(first!.header.destination?.port, env.port);
        assert.deepEqual(second!.header.source, { address: '192.0.2.7', port: 50_000 });
        assert.deepEqual(second!.header.destination, { address: '198.51.100.1', port: 110 });
      } finally {
        await env.close();
        await relay?.close();
      }
    });
  }
});

describe('PROXY protocol, FTP data connections', () => {
  test('the client a balancer names is the one address its passive data connection may come from', async () => {
    const env = await startFtpTwoTenants({ base: 21800, listener: { proxyProtocol: { trusted: [BALANCER] } } });
    try {
      // The named client is on loopback (127.0.0.5) so that it can really open the data connection.
      const c = await RawClient.connect(env.port, { localAddress: BALANCER });
      c.send(encodeProxyHeader('v2', { clientAddress: '127.0.0.5', clientPort: 40_000, localAddress: '127.0.0.1', localPort: env.port }));
      assert.match(await readFtpReply(c), /^220/);
      assert.match(await ftpCommand(c, 'USER alice@a.example'), /^331/);
      assert.match(await ftpCommand(c, `PASS ${FTP_PASSWORD_A}`), /^230/);
      const port = epsvPort(await ftpCommand(c, 'EPSV'));
      // The balancer's own address is not the client's: its data connection is dropped.
      const fromBalancer = net.connect({ host: '127.0.0.1', port, localAddress: BALANCER });
      fromBalancer.on('error', () => {});
      await once(fromBalancer, 'close');
      const body = readAll(port, { localAddress: '127.0.0.5' });
      assert.match(await ftpCommand(c, 'RETR only-at-a.txt'), /^150 /);
      assert.equal((await body).toString(), 'file of tenant a\n');
      assert.match(await readFtpReply(c), /^226 /);
      await ftpCommand(c, 'QUIT');
      await c.closed;
      await env.listener.whenIdle();
      const refused = env.logs.records().filter((r) => r.message === 'data connection refused');
      assert.deepEqual(refused.map((r) => [r.from, r.expected]), [[BALANCER, '127.0.0.5']]);
    } finally {
      await env.close();
    }
  });
});
