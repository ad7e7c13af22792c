import assert from 'node:assert/strict';
import { promises as dns } from 'node:dns';
import { after, before, describe, it } from 'node:test';
import { parseDestination, routeDomain } from '../relay/delivery/destinations.js';
import { startDnsServer } from './support/dns-server.js';

describe('relay destinations: MX, implicit MX, null MX, transports (RFC 5321 §5.1, RFC 7505)', () => {
  let server: Awaited<ReturnType<typeof startDnsServer>>;
  before(async () => {
    server = await startDnsServer({
      'mx.example': { mx: [{ preference: 20, exchange: 'backup.mx.example' }, { preference: 10, exchange: 'primary.mx.example' }] },
      'plain.example': { a: ['192.0.2.25'] },
      'nullmx.example': { mx: [{ preference: 0, exchange: '' }] },
      'broken.example': { rcode: 'SERVFAIL' },
      'empty.example': {},
    });
    // This test file runs in a process of its own: the resolver of dns.promises is ours alone.
    dns.setServers([server.address]);
  });
  after(() => server.close());

  it('MX hosts in preference order, port 25', async () => {
    assert.deepEqual(await routeDomain('mx.example', {}), { kind: 'servers', servers: [{ host: 'primary.mx.example', port: 25 }, { host: 'backup.mx.example', port: 25 }] });
  });

  it('no MX but an address: the domain itself', async () => {
    assert.deepEqual(await routeDomain('plain.example', {}), { kind: 'servers', servers: [{ host: 'plain.example', port: 25 }] });
  });

  it('null MX and a domain that does not exist fail for good; a resolver failure is temporary', async () => {
    assert.deepEqual(await routeDomain('nullmx.example', {}), { kind: 'permanent', status: '5.1.10', reason: 'nullmx.example accepts no mail (null MX)' });
    assert.deepEqual(await routeDomain('nowhere.example', {}), { kind: 'permanent', status: '5.1.2', reason: 'nowhere.example does not exist' });
    assert.equal((await routeDomain('empty.example', {})).kind, 'permanent', 'no MX and no address');
    const broken = await routeDomain('broken.example', {});
    assert.equal(broken.kind, 'temporary');
    assert.equal(broken.kind === 'temporary' && broken.status, '4.4.3');
  });

  it('transports win over DNS, "*" catches the rest; IPv6 destinations in brackets', async () => {
    assert.deepEqual(await routeDomain('mx.example', { 'mx.example': '127.0.0.1:2525' }), { kind: 'servers', servers: [{ host: '127.0.0.1', port: 2525 }] });
    assert.deepEqual(await routeDomain('other.example', { '*': '[::1]:25' }), { kind: 'servers', servers: [{ host: '::1', port: 25 }] });
    assert.deepEqual(parseDestination('smarthost.example:587'), { host: 'smarthost.example', port: 587 });
  });
});
