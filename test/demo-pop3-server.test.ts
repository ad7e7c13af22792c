import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Pop3Command from 'node-pop3';
import { LineReader } from '../demo/line-reader.js';
import { WireEncoder, readChunkOctets } from '../demo/message-transfer.js';
import { DemoPop3Server, type ConnectionRecord } from '../demo/pop3-server.js';

const capabilities = 'USER\r\nSASL PLAIN\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n';
const demoMaildir = fileURLToPath(new URL('../demo/maildir/', import.meta.url));

/** A raw POP3 client for exact protocol checks; bodies come back unstuffed. */
class RawClient {
  private buffered: Buffer = Buffer.alloc(0);
  private arrived: Buffer[] = [];
  private wakeUp: (() => void) | null = null;
  private closed = false;

  static async connect(port: number, localAddress?: string): Promise<RawClient> {
    const socket = net.connect({
      host: '127.0.0.1',
      port,
      allowHalfOpen: true,
      ...(localAddress === undefined ? {} : { localAddress }),
    });
    const client = new RawClient(socket);
    await once(socket, 'connect');
    return client;
  }

  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.arrived.push(chunk);
      this.wakeUp?.();
    });
    // Half-open so that a test can close its side and still read; the server's FIN ends ours.
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      this.closed = true;
      this.wakeUp?.();
    });
    socket.on('error', () => {});
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next reply line without its CRLF. */
  async readLine(): Promise<string> {
    for (;;) {
      const crlf = this.collect().indexOf('\r\n');
      if (crlf !== -1) return this.take(crlf + 2).toString('latin1', 0, crlf);
      await this.more();
    }
  }

  /** The body of a multi-line reply up to ".\r\n", dot-unstuffed, CRLFs kept. */
  async readBody(): Promise<Buffer> {
    const lines: Buffer[] = [];
    for (;;) {
      const data = this.collect();
      let start = 0;
      for (let crlf = data.indexOf('\r\n'); crlf !== -1; crlf = data.indexOf('\r\n', start)) {
        const line = data.subarray(start, crlf + 2);
        start = crlf + 2;
        if (line.length === 3 && line[0] === 0x2e) {
          this.take(start);
          return Buffer.concat(lines);
        }
        lines.push(line[0] === 0x2e ? line.subarray(1) : line);
      }
      this.take(start);
      await this.more();
    }
  }

  /** Resolves once the server has closed the connection. */
  async closedByServer(): Promise<void> {
    while (!this.closed) {
      this.collect();
      await this.more();
    }
  }

  private collect(): Buffer {
    if (this.arrived.length > 0) {
      this.buffered = Buffer.concat([this.buffered, ...this.arrived]);
      this.arrived = [];
    }
    return this.buffered;
  }

  private take(octets: number): Buffer {
    const taken = this.buffered.subarray(0, octets);
    this.buffered = this.buffered.subarray(octets);
    return taken;
  }

  private async more(): Promise<void> {
    if (this.arrived.length > 0) return;
    if (this.closed) throw new Error('connection closed by server');
    await new Promise<void>((resolve) => {
      this.wakeUp = resolve;
    });
    this.wakeUp = null;
  }
}

type MaildirFiles = Record<string, Buffer | string>;
type MaildirSpec = Record<string, { password: string; cur?: MaildirFiles; new?: MaildirFiles }>;

async function makeMaildir(spec: MaildirSpec): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'demo-pop3-'));
  const passwd = Object.entries(spec).map(([user, { password }]) => `${user}:${password}\n`);
  await writeFile(join(root, 'passwd'), `# test users\n\n${passwd.join('')}`);
  for (const [user, folders] of Object.entries(spec)) {
    for (const folder of ['cur', 'new'] as const) {
      const files = folders[folder];
      if (files === undefined) continue;
      await mkdir(join(root, user, folder), { recursive: true });
      for (const [name, content] of Object.entries(files)) await writeFile(join(root, user, folder, name), content);
    }
  }
  return root;
}

function plain(authzid: string, authcid: string, password: string): string {
  return Buffer.from(`${authzid}\0${authcid}\0${password}`).toString('base64');
}

/** What a stored text becomes on the wire: each LF (bare or not) as CRLF. */
function crlf(text: string): string {
  return text.replace(/\r?\n/g, '\r\n');
}

/** node-pop3 hands back RETR bodies still dot-stuffed and without the final CRLF. */
function unstuffNodePop3(body: string): string {
  return `${body.split('\r\n').map((line) => (line.startsWith('.') ? line.slice(1) : line)).join('\r\n')}\r\n`;
}

async function loggedIn(port: number, user = 'alice', password = 'alice-a-secret'): Promise<RawClient> {
  const client = await RawClient.connect(port);
  await client.readLine();
  client.send(`USER ${user}\r\nPASS ${password}\r\n`);
  assert.equal(await client.readLine(), '+OK Send your password.');
  assert.match(await client.readLine(), /^\+OK /);
  return client;
}

describe('DemoPop3Server with the shipped demo mail', () => {
  let server: DemoPop3Server;
  let port: number;

  before(async () => {
    server = new DemoPop3Server({ maildir: join(demoMaildir, 'a.example') });
    ({ port } = await server.listen());
  });
  after(async () => {
    await server.close();
    assert.equal(server.openConnections, 0);
  });

  it('greets and lists its capabilities', async () => {
    const client = await RawClient.connect(port);
    assert.equal(await client.readLine(), '+OK Demo POP3 server ready');
    client.send('CAPA\r\n');
    assert.equal(await client.readLine(), '+OK Capability list follows.');
    assert.equal((await client.readBody()).toString(), capabilities);
    client.send('QUIT\r\n');
    assert.equal(await client.readLine(), '+OK Bye.');
    await client.closedByServer();
  });

  it('logs in with USER/PASS through node-pop3 and serves STAT, LIST, UIDL, TOP and RETR', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: 'alice', password: 'alice-a-secret' });
    assert.equal(await pop3.STAT(), '2 757');
    assert.deepEqual(await pop3.LIST(), [['1', '426'], ['2', '331']]);
    assert.deepEqual(await pop3.UIDL(), [['1', '1700000000.M1P1.demo'], ['2', '1700000100.M2P1.demo']]);
    const welcome = unstuffNodePop3(await pop3.RETR(1));
    assert.match(welcome, /^From: Postmaster <postmaster@a\.example>\r\n/);
    assert.match(welcome, /\r\nSubject: Welcome to a\.example\r\n/);
    assert.equal(Buffer.byteLength(welcome), 426);
    const top = await pop3.TOP(2, 1);
    assert.match(top, /\r\nSubject: Lunch on Friday\?\r\n[^]*\r\n\r\nHi Alice,$/);
    assert.equal(await pop3.QUIT(), 'Bye.');
  });

  it('records the source address the client dialled from, and the login', async () => {
    const loginSeen = once(server, 'login') as Promise<[ConnectionRecord]>;
    const connectionSeen = once(server, 'connection') as Promise<[ConnectionRecord]>;
    const client = await RawClient.connect(port, '127.0.0.2');
    const [record] = await connectionSeen;
    assert.equal(record.remoteAddress, '127.0.0.2');
    assert.equal(record.remotePort, client.socket.localPort);
    assert.equal(record.localAddress, '127.0.0.1');
    assert.equal(record.authenticated, false);
    assert.equal(server.connections.at(-1), record);
    await client.readLine();
    client.send(`AUTH PLAIN ${plain('', 'alice', 'alice-a-secret')}\r\n`);
    assert.match(await client.readLine(), /^\+OK /);
    assert.deepEqual(await loginSeen, [
      {
        remoteAddress: '127.0.0.2',
        remotePort: client.socket.localPort,
        localAddress: '127.0.0.1',
        authenticated: true,
        user: 'alice',
        method: 'PLAIN',
      },
    ]);
    client.socket.destroy();
  });
});

describe('DemoPop3Server authentication', () => {
  let server: DemoPop3Server;
  let port: number;

  before(async () => {
    server = new DemoPop3Server({ maildir: join(demoMaildir, 'b.example'), greeting: 'b.example backend' });
    ({ port } = await server.listen());
  });
  after(() => server.close());

  it('accepts AUTH PLAIN with an initial response through node-pop3', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: 'unused', password: 'unused' });
    await pop3.connect();
    const [info] = await pop3.command('AUTH', 'PLAIN', plain('', 'alice', 'alice-b-secret'));
    assert.match(info, /^Mailbox open, 2 messages/);
    assert.match(unstuffNodePop3(await pop3.RETR(1)), /\r\nSubject: Welcome to b\.example\r\n/);
    await pop3.QUIT();
  });

  it('accepts AUTH PLAIN with a continuation through node-pop3', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: 'unused', password: 'unused' });
    await pop3.connect();
    await pop3.command('AUTH', 'PLAIN');
    const [info] = await pop3.command(plain('alice', 'alice', 'alice-b-secret'));
    assert.match(info, /^Mailbox open/);
    assert.equal(await pop3.STAT(), '2 839');
    await pop3.QUIT();
  });

  it('answers the AUTH PLAIN exchange exactly', async () => {
    const client = await RawClient.connect(port);
    assert.equal(await client.readLine(), '+OK b.example backend');
    client.send('AUTH PLAIN\r\n');
    assert.equal(await client.readLine(), '+ ');
    client.send('*\r\n');
    assert.equal(await client.readLine(), '-ERR Authentication cancelled.');
    client.send('AUTH PLAIN not-base64!\r\n');
    assert.equal(await client.readLine(), '-ERR Malformed SASL PLAIN response.');
    client.send(`AUTH PLAIN ${plain('bob', 'alice', 'alice-b-secret')}\r\n`);
    assert.equal(await client.readLine(), '-ERR [AUTH] Authentication failed.');
    client.send('AUTH CRAM-MD5\r\n');
    assert.equal(await client.readLine(), '-ERR Unsupported authentication mechanism.');
    client.send('AUTH PLAIN\r\n');
    assert.equal(await client.readLine(), '+ ');
    client.send(`${plain('', 'alice', 'alice-b-secret')}\r\n`);
    assert.equal(await client.readLine(), '+OK Mailbox open, 2 messages (839 octets).');
    client.send('QUIT\r\n');
    assert.equal(await client.readLine(), '+OK Bye.');
    await client.closedByServer();
  });

  it('rejects a wrong password and an unknown user with the same reply', async () => {
    const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: 'alice', password: 'alice-a-secret' });
    await assert.rejects(pop3.STAT(), { message: '[AUTH] Authentication failed.' });
    await pop3.QUIT();

    const client = await RawClient.connect(port);
    await client.readLine();
    client.send('PASS alice-b-secret\r\n');
    assert.equal(await client.readLine(), '-ERR Send USER first.');
    client.send('USER alice\r\nPASS alice-a-secret\r\n');
    assert.equal(await client.readLine(), '+OK Send your password.');
    assert.equal(await client.readLine(), '-ERR [AUTH] Authentication failed.');
    client.send('USER mallory\r\nPASS alice-b-secret\r\n');
    assert.equal(await client.readLine(), '+OK Send your password.');
    assert.equal(await client.readLine(), '-ERR [AUTH] Authentication failed.');
    client.send('USER ../b.example\r\nPASS x\r\n');
    await client.readLine();
    assert.equal(await client.readLine(), '-ERR [AUTH] Authentication failed.');
    client.send('STAT\r\n');
    assert.equal(await client.readLine(), '-ERR Command not valid in this state.');
    client.send('XYZZY\r\n');
    assert.equal(await client.readLine(), '-ERR Unknown command.');
    client.send('USER alice\r\nPASS alice-b-secret\r\n');
    await client.readLine();
    assert.match(await client.readLine(), /^\+OK Mailbox open/);
    client.send('USER alice\r\n');
    assert.equal(await client.readLine(), '-ERR Command not valid in this state.');
    client.socket.destroy();
  });
});

describe('DemoPop3Server framing', () => {
  let server: DemoPop3Server;
  let port: number;

  before(async () => {
    server = new DemoPop3Server({ maildir: join(demoMaildir, 'a.example') });
    ({ port } = await server.listen());
  });
  after(() => server.close());

  it('joins a command split across two writes', async () => {
    const client = await RawClient.connect(port);
    await client.readLine();
    // The NOOP reply proves the server has read the first write before the second is sent.
    client.send('NOOP\r\nUS');
    assert.equal(await client.readLine(), '-ERR Command not valid in this state.');
    client.send('ER alice\r\n');
    assert.equal(await client.readLine(), '+OK Send your password.');
    client.send('PASS alice-a-secret\r\nNOOP\r\nST');
    assert.match(await client.readLine(), /^\+OK Mailbox open/);
    assert.equal(await client.readLine(), '+OK');
    client.send('AT\r');
    client.send('\n');
    assert.equal(await client.readLine(), '+OK 2 757');
    client.socket.destroy();
  });

  it('answers pipelined commands in order, bare LF included', async () => {
    const client = await RawClient.connect(port);
    await client.readLine();
    // One write, one packet; STAT ends in a bare LF.
    client.send(
      'USER alice\r\nPASS alice-a-secret\r\nSTAT\nLIST\r\nRETR 2\r\nDELE 1\r\nLIST 1\r\nRSET\r\nUIDL 1\r\nQUIT\r\n',
    );
    assert.equal(await client.readLine(), '+OK Send your password.');
    assert.equal(await client.readLine(), '+OK Mailbox open, 2 messages (757 octets).');
    assert.equal(await client.readLine(), '+OK 2 757');
    assert.equal(await client.readLine(), '+OK 2 messages.');
    assert.equal((await client.readBody()).toString(), '1 426\r\n2 331\r\n');
    assert.equal(await client.readLine(), '+OK 331 octets');
    assert.match((await client.readBody()).toString(), /^From: Bob at a\.example <bob@a\.example>\r\n[^]*\r\nBob\r\n$/);
    assert.equal(await client.readLine(), '+OK Message 1 deleted.');
    assert.equal(await client.readLine(), '-ERR No such message.');
    assert.equal(await client.readLine(), '+OK Maildrop has 2 messages (757 octets).');
    assert.equal(await client.readLine(), '+OK 1 1700000000.M1P1.demo');
    assert.equal(await client.readLine(), '+OK Bye.');
    await client.closedByServer();
  });

  it('answers everything a client sent before half-closing, then closes', async () => {
    const client = await RawClient.connect(port);
    client.socket.end('USER alice\r\nPASS alice-a-secret\r\nRETR 1\r\nSTAT\r\n');
    assert.equal(await client.readLine(), '+OK Demo POP3 server ready');
    assert.equal(await client.readLine(), '+OK Send your password.');
    assert.match(await client.readLine(), /^\+OK Mailbox open/);
    assert.equal(await client.readLine(), '+OK 426 octets');
    assert.equal((await client.readBody()).length, 426);
    assert.equal(await client.readLine(), '+OK 2 757');
    await client.closedByServer();
  });

  it('keeps every reply, in order, for a client that writes far ahead of reading', async () => {
    const client = await RawClient.connect(port);
    await client.readLine();
    const rounds = 20_000;
    // About 2 MB of replies: more than the socket buffers hold, so the server must wait for
    // 'drain' and stop reading, while this client is still writing.
    client.send('CAPA\r\nNOOP\r\n'.repeat(rounds));
    for (let round = 0; round < rounds; round += 1) {
      assert.equal(await client.readLine(), '+OK Capability list follows.');
      assert.equal((await client.readBody()).toString(), capabilities);
      assert.equal(await client.readLine(), '-ERR Command not valid in this state.');
    }
    client.socket.destroy();
  });

  it('refuses a line over 255 octets and closes', async () => {
    const client = await RawClient.connect(port);
    await client.readLine();
    client.send(`${'X'.repeat(253)}\r\n`);
    assert.equal(await client.readLine(), '-ERR Unknown command.');
    client.send(`NOOP ${'x'.repeat(300)}\r\nNOOP\r\n`);
    assert.equal(await client.readLine(), '-ERR Line too long.');
    await client.closedByServer();
  });

  it('survives binary garbage and abrupt resets', async () => {
    const client = await RawClient.connect(port);
    await client.readLine();
    client.send(Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0d, 0x0a, 0x80, 0x0a]));
    assert.equal(await client.readLine(), '-ERR Unknown command.');
    assert.equal(await client.readLine(), '-ERR Unknown command.');
    client.send('QUIT\r\n');
    assert.equal(await client.readLine(), '+OK Bye.');
    const resetter = await RawClient.connect(port);
    await resetter.readLine();
    const gone = disconnected(server, resetter);
    resetter.socket.resetAndDestroy();
    await gone;
  });
});

describe('DemoPop3Server message transfer', () => {
  const dotted = 'Subject: dots\n\n.\n..\n.hidden\nend.\n.';
  const mixed = Buffer.concat([
    Buffer.from('Subject: mixed endings\r\n\r\ncrlf line\r\nlf line\nlone\rcr\r\n8-bit: '),
    Buffer.from([0xe9, 0x00, 0xff, 0x80]),
    Buffer.from('\nno final newline'),
  ]);
  let root: string;
  let server: DemoPop3Server;
  let port: number;
  let bigExpected: Buffer;
  let edgeExpected: Buffer;

  before(async () => {
    const big = generateMessage(20 * 1024 * 1024);
    bigExpected = big.wire;
    const edge = chunkEdgeMessage();
    edgeExpected = edge.wire;
    root = await makeMaildir({
      alice: {
        password: 'pw',
        cur: { '2:2,S': dotted, '3:2,': mixed, '5:2,': edge.stored, '6:2,': '' },
        new: { '1': 'Subject: first\n\nhello\n', '4': big.stored, '.hidden': 'not a message' },
      },
      bob: { password: 'pw' },
    });
    server = new DemoPop3Server({ maildir: root });
    ({ port } = await server.listen());
  });
  after(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('orders cur/ and new/ by file name and sizes messages in CRLF form', async () => {
    const client = await loggedIn(port, 'alice', 'pw');
    client.send('UIDL\r\nLIST\r\n');
    await client.readLine();
    assert.equal((await client.readBody()).toString(), '1 1\r\n2 2\r\n3 3\r\n4 4\r\n5 5\r\n6 6\r\n');
    await client.readLine();
    const sizes = (await client.readBody()).toString().trim().split('\r\n').map((line) => Number(line.split(' ')[1]));
    const mixedWire = Buffer.concat([
      Buffer.from('Subject: mixed endings\r\n\r\ncrlf line\r\nlf line\r\nlone\rcr\r\n8-bit: '),
      Buffer.from([0xe9, 0x00, 0xff, 0x80]),
      Buffer.from('\r\nno final newline\r\n'),
    ]);
    assert.deepEqual(sizes, [
      crlf('Subject: first\n\nhello\n').length,
      crlf(`${dotted}\n`).length,
      mixedWire.length,
      bigExpected.length,
      edgeExpected.length,
      0,
    ]);
    client.send('RETR 3\r\nRETR 6\r\n');
    assert.equal(await client.readLine(), `+OK ${mixedWire.length} octets`);
    assert.deepEqual(await client.readBody(), mixedWire);
    assert.equal(await client.readLine(), '+OK 0 octets');
    assert.deepEqual(await client.readBody(), Buffer.alloc(0));
    client.send('QUIT\r\n');
    await client.closedByServer();
  });

  it('dot-stuffs lines that begin with a dot, for raw clients and node-pop3 alike', async () => {
    const client = await loggedIn(port, 'alice', 'pw');
    client.send('RETR 2\r\n');
    await client.readLine();
    assert.equal((await client.readBody()).toString(), crlf(`${dotted}\n`));
    client.socket.destroy();

    const pop3 = new Pop3Command({ host: '127.0.0.1', port, user: 'alice', password: 'pw' });
    const body = await pop3.RETR(2);
    assert.equal(body, 'Subject: dots\r\n\r\n..\r\n...\r\n..hidden\r\nend.\r\n..');
    assert.equal(unstuffNodePop3(body), crlf(`${dotted}\n`));
    await pop3.QUIT();
  });

  it('streams a 20 MiB message byte-identical', async () => {
    const client = await loggedIn(port, 'alice', 'pw');
    client.send('RETR 4\r\n');
    assert.equal(await client.readLine(), `+OK ${bigExpected.length} octets`);
    const body = await client.readBody();
    assert.equal(sha256(body), sha256(bigExpected));
    client.send('NOOP\r\n');
    assert.equal(await client.readLine(), '+OK');
    client.socket.destroy();
  });

  it('keeps line starts and CRLFs right across read-chunk edges', async () => {
    const client = await loggedIn(port, 'alice', 'pw');
    client.send('RETR 5\r\nTOP 5 1\r\n');
    await client.readLine();
    assert.equal(sha256(await client.readBody()), sha256(edgeExpected));
    assert.equal(await client.readLine(), '+OK');
    assert.equal((await client.readBody()).toString(), 'Subject: chunk edges\r\n\r\n.first body line\r\n');
    client.socket.destroy();
  });

  it('stops a transfer when the client goes away mid-message', async () => {
    const client = await loggedIn(port, 'alice', 'pw');
    const gone = disconnected(server, client);
    client.send('RETR 4\r\n');
    await client.readLine();
    client.socket.destroy();
    await gone;
  });

  it('reads a user with no Maildir as an empty maildrop', async () => {
    const client = await loggedIn(port, 'bob', 'pw');
    client.send('STAT\r\nRETR 1\r\nLIST\r\n');
    assert.equal(await client.readLine(), '+OK 0 0');
    assert.equal(await client.readLine(), '-ERR No such message.');
    assert.equal(await client.readLine(), '+OK 0 messages.');
    assert.deepEqual(await client.readBody(), Buffer.alloc(0));
    client.socket.destroy();
  });
});

describe('DemoPop3Server DELE', () => {
  let root: string;

  before(async () => {
    root = await makeMaildir({ alice: { password: 'pw', cur: { 'a:2,S': 'one\n', 'b:2,S': 'two\n' } } });
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('forgets deletions at QUIT when read-only (the default)', async () => {
    const server = new DemoPop3Server({ maildir: root });
    const { port } = await server.listen();
    const client = await loggedIn(port, 'alice', 'pw');
    client.send('DELE 1\r\nDELE 1\r\nSTAT\r\nQUIT\r\n');
    assert.equal(await client.readLine(), '+OK Message 1 deleted.');
    assert.equal(await client.readLine(), '-ERR No such message.');
    assert.equal(await client.readLine(), '+OK 1 5');
    assert.equal(await client.readLine(), '+OK Bye.');
    await client.closedByServer();
    assert.ok(existsSync(join(root, 'alice', 'cur', 'a:2,S')));
    await server.close();
  });

  it('removes deleted messages at QUIT and locks the maildrop when writable', async () => {
    const server = new DemoPop3Server({ maildir: root, readOnly: false });
    const { port } = await server.listen();
    const client = await loggedIn(port, 'alice', 'pw');
    const rival = await RawClient.connect(port);
    await rival.readLine();
    rival.send(`AUTH PLAIN ${plain('', 'alice', 'pw')}\r\n`);
    assert.equal(await rival.readLine(), '-ERR [IN-USE] Mailbox is locked by another session.');
    client.send('DELE 1\r\nQUIT\r\n');
    assert.equal(await client.readLine(), '+OK Message 1 deleted.');
    assert.equal(await client.readLine(), '+OK Bye.');
    await client.closedByServer();
    assert.equal(existsSync(join(root, 'alice', 'cur', 'a:2,S')), false);
    rival.send(`AUTH PLAIN ${plain('', 'alice', 'pw')}\r\n`);
    assert.equal(await rival.readLine(), '+OK Mailbox open, 1 messages (5 octets).');
    await server.close();
  });
});

describe('DemoPop3Server.close', () => {
  it('destroys open connections and resolves once all are closed', async () => {
    const server = new DemoPop3Server({ maildir: join(demoMaildir, 'a.example') });
    const { address, port } = await server.listen();
    assert.equal(address, '127.0.0.1');
    assert.equal(server.port, port);
    const idle = await RawClient.connect(port);
    const busy = await loggedIn(port);
    await idle.readLine();
    assert.equal(server.openConnections, 2);
    await server.close();
    assert.equal(server.openConnections, 0);
    await Promise.all([idle.closedByServer(), busy.closedByServer()]);
    await assert.rejects(RawClient.connect(port), { code: 'ECONNREFUSED' });
    await server.close();
  });
});

describe('demo line framing and wire encoding, fed Buffers directly', () => {
  it('LineReader joins split lines and flags over-long ones', () => {
    const reader = new LineReader(255);
    assert.deepEqual(reader.push(Buffer.from('US')), []);
    assert.deepEqual(reader.push(Buffer.from('ER a\r')), []);
    assert.deepEqual(reader.push(Buffer.from('\nNOOP\nX')), [
      { kind: 'line', line: 'USER a' },
      { kind: 'line', line: 'NOOP' },
    ]);
    assert.deepEqual(reader.push(Buffer.from('x'.repeat(253))), [{ kind: 'tooLong' }]);
    assert.deepEqual(reader.push(Buffer.from('more\r\nQUIT\r\n')), [{ kind: 'line', line: 'QUIT' }]);
    assert.deepEqual(reader.push(Buffer.from(`${'y'.repeat(253)}\r\n`)), [{ kind: 'line', line: 'y'.repeat(253) }]);
  });

  it('WireEncoder gives the same bytes however the message is cut', () => {
    const stored = Buffer.from('.a\r\nb\n.\n\r\n..c\rd\n.e');
    const expected = Buffer.from('..a\r\nb\r\n..\r\n\r\n...c\rd\r\n..e\r\n.\r\n');
    for (let cut = 0; cut <= stored.length; cut += 1) {
      for (let cut2 = cut; cut2 <= stored.length; cut2 += 1) {
        const encoder = new WireEncoder();
        const pieces = [stored.subarray(0, cut), stored.subarray(cut, cut2), stored.subarray(cut2)];
        const parts = pieces.map((piece) => encoder.encode(piece));
        assert.deepEqual(Buffer.concat([...parts, encoder.finish()]), expected, `cut at ${cut} and ${cut2}`);
      }
    }
  });
});

/** Resolves when the server has seen this client's connection close. */
function disconnected(server: DemoPop3Server, client: RawClient): Promise<void> {
  // Read now: a destroyed socket no longer knows its port.
  const port = client.socket.localPort;
  return new Promise((resolve) => {
    const onDisconnect = (record: ConnectionRecord): void => {
      if (record.remotePort !== port) return;
      server.off('disconnect', onDisconnect);
      resolve();
    };
    server.on('disconnect', onDisconnect);
  });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * A message of about `octets` octets with LF and CRLF endings, dot-led lines, 8-bit text and
 * no final newline, alongside its expected unstuffed wire form.
 */
function generateMessage(octets: number): { stored: Buffer; wire: Buffer } {
  const stored = Buffer.alloc(octets + 256);
  const wire = Buffer.alloc(octets * 2 + 256);
  const alphabet = Buffer.from('abcdefghijklmnopqrstuvwxyz .,:;-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\u00e9\u00fc');
  let seed = 12345;
  const next = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed >>> 8;
  };
  let s = stored.write('Subject: big\n\n');
  let w = wire.write('Subject: big\r\n\r\n');
  while (s < octets) {
    const length = next() % 120;
    const offset = next() % (alphabet.length - 1);
    const line = alphabet.subarray(offset, Math.min(alphabet.length, offset + length));
    const dotLed = next() % 16 === 0;
    if (dotLed) {
      stored[s++] = 0x2e;
      wire[w++] = 0x2e;
    }
    s += line.copy(stored, s);
    w += line.copy(wire, w);
    if (s >= octets) break;
    if (next() % 3 === 0) stored[s++] = 0x0d;
    stored[s++] = 0x0a;
    wire[w++] = 0x0d;
    wire[w++] = 0x0a;
  }
  wire[w++] = 0x0d;
  wire[w++] = 0x0a;
  return { stored: stored.subarray(0, s), wire: wire.subarray(0, w) };
}

/** A '.' right at the first read-chunk edge and a CRLF straddling the second. */
function chunkEdgeMessage(): { stored: Buffer; wire: Buffer } {
  const head = 'Subject: chunk edges\n\n.first body line\n';
  const filler = (octets: number): string => `${'f'.repeat(octets - 1)}\n`;
  const firstPart = head + filler(readChunkOctets - head.length);
  const edgeLine = '.dot at the chunk edge';
  const secondPart = `${edgeLine}${filler(readChunkOctets - 1 - edgeLine.length)}\r\n.after\n`;
  const stored = Buffer.from(firstPart + secondPart);
  assert.equal(stored[readChunkOctets], 0x2e);
  assert.equal(stored[2 * readChunkOctets - 1], 0x0d);
  return { stored, wire: Buffer.from(crlf(firstPart + secondPart)) };
}
