// Concierge in front of real dovecot, with curl as the POP3 client: routing by login domain,
// the tenant's source address as dovecot sees it, backendUser, failed logins, a large message,
// failover. Every Concierge runs in-process on 127.0.0.1:0; each dovecot on its own free port.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Config } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import type { Listener } from '../../src/listener.js';
import { closedPort } from '../support/fake-backend.js';
import { testConfig } from '../support/fixtures.js';
import { captureLogs } from '../support/logs.js';
import { RawClient } from '../support/raw-client.js';
import { curlPop3, type CurlResult } from './curl.js';
import { startDovecot, type DovecotInstance } from './dovecot.js';
import { messageBytes } from './maildir.js';
import { pop3Dialog } from './pop3-dialog.js';
import { processesMentioning } from './processes.js';
import { connectOnce } from './daemon-wait.js';

// One user name, `alice`, on both tenants' dovecots, with different passwords and mail.
const PW_A = 'alice-at-a-local';
const PW_A_FULL = 'alice-at-a-full-name';
const PW_B = 'alice-at-b-local';
const PW_BIG = 'big-mailbox-secret';
// Spaces and UTF-8 (and a '+' and '=' that base64 could be confused by): relayed as bytes, not re-encoded.
const PW_CAROL = 'pässwörd € with spaces +=';

const mailA = [
  'From: carol@example.org\nTo: alice@a.example\nSubject: for alice at a\n\nThis is a.example\'s alice.\n',
  'Subject: dots at a\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n',
];
const mailAFull = ['From: carol@example.org\nTo: alice@a.example\nSubject: full name\n\nStored under the user alice@a.example.\n'];
const mailB = ['From: dave@example.org\nTo: alice@b.example\nSubject: for alice at b\n\nThis is b.example\'s alice, elsewhere.\n'];
const mailCarol = ['Subject: carol\n\n.a dot line for carol\n'];
const BIG_SIZE = 12 * 1024 * 1024;
const big = bigMessage(BIG_SIZE);

const GREETING = '+OK POP3 server ready';
const AUTH_FAILED = '-ERR [AUTH] Authentication failed';
const TEMP_FAILURE = '-ERR [SYS/TEMP] Service temporarily unavailable, try again later';
const CURLE_LOGIN_DENIED = 67;
const AUTH_FAIL_DELAY_MS = 50;
// Bounds, not waits: a hang fails the test instead of stalling the run.
const TEST_TIMEOUT = { timeout: 30_000 };

/** Lines of every length up to 998, dot lines that must be (un)stuffed, and 8-bit bytes, with CRLF ends. */
function bigMessage(size: number): Buffer {
  const chunks: Buffer[] = [Buffer.from('From: bulk@example.org\r\nTo: big@a.example\r\nSubject: large\r\n\r\n')];
  let length = chunks[0]!.length;
  for (let i = 0; length < size; i++) {
    let line: Buffer;
    if (i % 101 === 0) line = Buffer.from('.');
    else if (i % 13 === 0) line = Buffer.from(`..${i} two dots`);
    else if (i % 7 === 0) line = Buffer.from(`.${i} `.padEnd(20 + (i % 300), 'd'));
    else if (i % 11 === 0) line = Buffer.from(Array.from({ length: 60 }, (_, j) => 0x80 + ((i + j) % 128)));
    else line = Buffer.from(`line ${i} `.padEnd(i % 997 === 0 ? 998 : 30 + (i % 70), String.fromCharCode(97 + (i % 26))));
    const withEnd = Buffer.concat([line, Buffer.from('\r\n')]);
    chunks.push(withEnd);
    length += withEnd.length;
  }
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function tenant(domain: string, sourceAddress: string, backends: Array<{ port: number }>, extra: Record<string, unknown> = {}) {
  return { domain, sourceAddress, backends: { pop3: backends.map((b) => ({ host: '127.0.0.1', port: b.port })) }, ...extra };
}

/**
 * testConfig's quick limits (a failed login answered after 50 ms), with backend replies allowed
 * longer: dovecot spawns its auth process on first use, and answers a refusal on a 500 ms tick.
 */
function proxyConfig(tenants: unknown[]): Config {
  return testConfig(tenants, (raw) =>
    Object.assign(raw.limits, { authFailDelayMs: AUTH_FAIL_DELAY_MS, backendReplyTimeoutMs: 5_000, loginTimeoutMs: 10_000, idleTimeoutMs: 30_000 }),
  );
}

interface Proxy {
  concierge: Concierge;
  listener: Listener;
  port: number;
  logs: ReturnType<typeof captureLogs>;
}

async function startProxy(tenants: unknown[]): Promise<Proxy> {
  const logs = captureLogs('debug');
  const concierge = await startConcierge(proxyConfig(tenants), { logger: logs.logger });
  const listener = concierge.listeners[0]!;
  return { concierge, listener, port: listener.address().port, logs };
}

/** whenIdle(), bounded: a leaked session fails the test instead of hanging the run. */
async function idle(listener: Listener, timeoutMs = 5_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`listener still has ${listener.sessionCount} session(s) after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([listener.whenIdle(), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** curl through a proxy (or any POP3 port on 127.0.0.1). */
function curl(port: number, path: string, user: string, password: string, extraArgs: string[] = []): Promise<CurlResult> {
  return curlPop3(`pop3://127.0.0.1:${port}/${path}`, user, password, extraArgs);
}

function assertOk(res: CurlResult): void {
  assert.equal(res.code, 0, `curl exit ${res.code}: ${res.stderr}`);
}


describe('Concierge in front of dovecot, curl as the client', () => {
  let dovecotA: DovecotInstance | undefined;
  let dovecotB: DovecotInstance | undefined;
  let proxy: Proxy | undefined;
  // Non-undefined views for the tests (before() has run).
  const A = () => dovecotA!;
  const B = () => dovecotB!;
  const P = () => proxy!;

  before(async () => {
    [dovecotA, dovecotB] = await Promise.all([
      startDovecot({
        users: [
          { user: 'alice', password: PW_A, messages: mailA },
          { user: 'alice@a.example', password: PW_A_FULL, messages: mailAFull },
          { user: 'big', password: PW_BIG, messages: [big] },
        ],
      }),
      startDovecot({
        users: [
          { user: 'alice', password: PW_B, messages: mailB },
          { user: 'carol', password: PW_CAROL, messages: mailCarol },
        ],
      }),
    ]);
    proxy = await startProxy([tenant('a.example', '127.0.0.2', [A()]), tenant('b.example', '127.0.0.3', [B()])]);
  }, TEST_TIMEOUT);

  // Safety net only; the last test does the same and asserts on it.
  after(async () => {
    await proxy?.concierge.close();
    await Promise.all([dovecotA?.stop(), dovecotB?.stop()]);
  }, TEST_TIMEOUT);

  test('the same login name on two tenants reaches each tenant’s own dovecot', TEST_TIMEOUT, async () => {
    const a = await curl(P().port, '1', 'alice@a.example', PW_A);
    assertOk(a);
    assert.deepEqual(a.stdout, messageBytes(mailA[0]!));
    const b = await curl(P().port, '1', 'alice@b.example', PW_B);
    assertOk(b);
    assert.deepEqual(b.stdout, messageBytes(mailB[0]!));
    // The whole mailbox, and the dot-stuffed message, come from a.example's dovecot.
    const list = await curl(P().port, '', 'alice@A.Example', PW_A);
    assertOk(list);
    assert.equal(list.stdout.toString('latin1'), mailA.map((m, i) => `${i + 1} ${messageBytes(m).length}\r\n`).join(''));
    const dots = await curl(P().port, '2', 'alice@a.example', PW_A);
    assertOk(dots);
    assert.deepEqual(dots.stdout, messageBytes(mailA[1]!));
    // Each password only opens its own tenant's mailbox.
    for (const [user, password] of [['alice@a.example', PW_B], ['alice@b.example', PW_A]] as const) {
      const res = await curl(P().port, '1', user, password);
      assert.equal(res.code, CURLE_LOGIN_DENIED, `${user}: ${res.stderr}`);
      assert.equal(res.stdout.length, 0);
    }
    await idle(P().listener);
  });

  test('dovecot sees each tenant’s logins from the tenant’s source address', TEST_TIMEOUT, async () => {
    const seenA = (await A().logins()).length;
    const seenB = (await B().logins()).length;
    assertOk(await curl(P().port, '', 'alice@a.example', PW_A)); // curl picks AUTH PLAIN
    assertOk(await curl(P().port, '', 'alice@b.example', PW_B));
    const replies = await pop3Dialog({ port: P().port }, ['USER alice@b.example', `PASS ${PW_B}`, 'STAT', 'QUIT']);
    assert.equal(replies[3], `+OK 1 ${messageBytes(mailB[0]!).length}`);

    const loginsA = await A().logins({ atLeast: seenA + 1 });
    const loginsB = await B().logins({ atLeast: seenB + 2 });
    assert.deepEqual(loginsA.slice(seenA), [{ user: 'alice', rip: '127.0.0.2', lip: '127.0.0.1', method: 'PLAIN' }]);
    assert.deepEqual(loginsB.slice(seenB), [
      { user: 'alice', rip: '127.0.0.3', lip: '127.0.0.1', method: 'PLAIN' },
      { user: 'alice', rip: '127.0.0.3', lip: '127.0.0.1', method: 'PLAIN' },
    ]);
    await idle(P().listener);
  });

  test('a password with spaces and UTF-8 works with AUTH PLAIN and USER/PASS, and commands pipelined after PASS reach dovecot', TEST_TIMEOUT, async () => {
    const seenB = (await B().logins()).length;
    const viaCurl = await curl(P().port, '1', 'carol@b.example', PW_CAROL);
    assertOk(viaCurl);
    assert.deepEqual(viaCurl.stdout, messageBytes(mailCarol[0]!));

    const stored = messageBytes(mailCarol[0]!);
    const client = await RawClient.connect(P().port);
    try {
      assert.equal(await client.line(), GREETING);
      client.send(Buffer.from(`USER carol@b.example\r\nPASS ${PW_CAROL}\r\nSTAT\r\nRETR 1\r\nQUIT\r\n`, 'utf8'));
      assert.equal(await client.line(), '+OK', 'Concierge takes USER');
      assert.match(await client.line(), /^\+OK/, 'dovecot accepts the password');
      assert.equal(await client.line(), `+OK 1 ${stored.length}`);
      assert.match(await client.line(), /^\+OK/);
      const body = await client.multiline();
      // What dovecot sends is dot-stuffed: undo it, put the CRLFs back.
      assert.equal(body.map((l) => `${l.startsWith('.') ? l.slice(1) : l}\r\n`).join(''), stored.toString('latin1'));
      assert.match(await client.line(), /^\+OK/, 'QUIT');
      await client.closed;
    } finally {
      client.close();
    }
    const logins = await B().logins({ atLeast: seenB + 2 });
    assert.deepEqual(logins.slice(seenB).map((l) => [l.user, l.rip]), [['carol', '127.0.0.3'], ['carol', '127.0.0.3']]);
    await idle(P().listener);
  });

  test('backendUser "local" sends dovecot `alice`, "full" sends `alice@a.example`', TEST_TIMEOUT, async () => {
    // The shared proxy is "local" (the default): the full-name account's password is refused.
    const seenA = (await A().logins()).length;
    const local = await curl(P().port, '1', 'alice@a.example', PW_A);
    assertOk(local);
    assert.deepEqual(local.stdout, messageBytes(mailA[0]!));
    assert.equal((await curl(P().port, '1', 'alice@a.example', PW_A_FULL)).code, CURLE_LOGIN_DENIED);
    await idle(P().listener);

    const full = await startProxy([tenant('a.example', '127.0.0.2', [A()], { backendUser: 'full' })]);
    try {
      const res = await curl(full.port, '1', 'alice@a.example', PW_A_FULL);
      assertOk(res);
      assert.deepEqual(res.stdout, messageBytes(mailAFull[0]!));
      assert.equal((await curl(full.port, '1', 'alice@a.example', PW_A)).code, CURLE_LOGIN_DENIED);
      await idle(full.listener);
    } finally {
      await full.concierge.close();
    }
    const logins = await A().logins({ atLeast: seenA + 2 });
    assert.deepEqual(
      logins.slice(seenA).map((l) => [l.user, l.rip]),
      [['alice', '127.0.0.2'], ['alice@a.example', '127.0.0.2']],
    );
  });

  test('unknown domain, unknown user and wrong password get byte-identical replies', TEST_TIMEOUT, async (t) => {
    const seenFailed = (await A().failedLogins()).length;
    const cases = [
      ['unknown domain', 'alice@nowhere.example', PW_A],
      ['unknown user', 'mallory@a.example', PW_A],
      ['wrong password', 'alice@a.example', 'not-the-password'],
    ] as const;
    const transcripts: string[] = [];
    const durations: number[] = [];
    for (const [, user, password] of cases) {
      const started = performance.now();
      const replies = await pop3Dialog({ port: P().port }, [`USER ${user}`, `PASS ${password}`, 'QUIT']);
      durations.push(performance.now() - started);
      // pop3Dialog splits only at CRLF and decodes latin1, so this is the exact byte stream.
      transcripts.push(replies.map((r) => `${r}\r\n`).join(''));
    }
    t.diagnostic(`dialog durations (ms): ${cases.map(([what], i) => `${what} ${Math.round(durations[i]!)}`).join(', ')}`);
    const expected = `${GREETING}\r\n+OK\r\n${AUTH_FAILED}\r\n+OK Bye\r\n`;
    for (const [i, [what]] of cases.entries()) {
      assert.equal(transcripts[i], expected, what);
      // Even the failure Concierge decides alone (no tenant) is answered no sooner than authFailDelayMs.
      assert.ok(durations[i]! >= AUTH_FAIL_DELAY_MS, `${what}: answered in ${durations[i]} ms`);
    }

    for (const [what, user, password] of cases) {
      const res = await curl(P().port, '1', user, password);
      assert.notEqual(res.code, 0, what);
      assert.equal(res.code, CURLE_LOGIN_DENIED, `${what}: ${res.stderr}`);
      assert.equal(res.stdout.length, 0, what);
    }
    // The two that reached dovecot did so from a.example's address, once by dialog and once by curl each.
    const failed = await A().failedLogins({ atLeast: seenFailed + 4 });
    assert.deepEqual(
      failed.slice(seenFailed).map((f) => `${f.user} ${f.rip}`).sort(),
      ['alice 127.0.0.2', 'alice 127.0.0.2', 'mallory 127.0.0.2', 'mallory 127.0.0.2'],
    );
    const reasons = P().logs.records().filter((r) => r.message === 'login failed').map((r) => r.reason);
    assert.equal(reasons.filter((r) => r === 'unknownTenant').length, 2);
    await idle(P().listener);
  });

  test(`a ${BIG_SIZE / 1024 / 1024} MiB message arrives byte-identical through the proxy`, TEST_TIMEOUT, async () => {
    const stored = messageBytes(big);
    const bytesBefore = P().concierge.traffic.get('a.example')?.bytesDown ?? 0;
    const direct = await curl(A().port, '1', 'big', PW_BIG);
    assertOk(direct);
    assert.equal(sha256(direct.stdout), sha256(stored), 'direct from dovecot (reference)');
    const proxied = await curl(P().port, '1', 'big@a.example', PW_BIG);
    assertOk(proxied);
    assert.equal(proxied.stdout.length, stored.length);
    assert.equal(sha256(proxied.stdout), sha256(stored));
    // A client reading slower than dovecot sends: Concierge's relay has to hold back, not drop or reorder.
    const slow = await curl(P().port, '1', 'big@a.example', PW_BIG, ['--limit-rate', '24M']);
    assertOk(slow);
    assert.equal(slow.stdout.length, stored.length);
    assert.equal(sha256(slow.stdout), sha256(stored), 'rate-limited client');
    await idle(P().listener);
    // The dot-stuffed replies are larger than the message: both were counted for the tenant.
    const bytesDown = (P().concierge.traffic.get('a.example')?.bytesDown ?? 0) - bytesBefore;
    assert.ok(bytesDown > 2 * stored.length, `bytesDown ${bytesDown} <= 2 × ${stored.length}`);
  });

  test('a backend that is down is skipped; with every backend down the client gets [SYS/TEMP]', TEST_TIMEOUT, async () => {
    const [downA, downB1, downB2] = [await closedPort(), await closedPort(), await closedPort()];
    const failover = await startProxy([
      tenant('a.example', '127.0.0.2', [{ port: downA }, A()]),
      tenant('b.example', '127.0.0.3', [{ port: downB1 }, { port: downB2 }]),
    ]);
    try {
      const seenA = (await A().logins()).length;
      const res = await curl(failover.port, '1', 'alice@a.example', PW_A);
      assertOk(res);
      assert.deepEqual(res.stdout, messageBytes(mailA[0]!));
      const logins = await A().logins({ atLeast: seenA + 1 });
      assert.deepEqual(logins.slice(seenA).map((l) => [l.user, l.rip]), [['alice', '127.0.0.2']]);
      const failedA = failover.logs.records().filter((r) => r.message === 'backend failed');
      assert.deepEqual(failedA.map((r) => [r.tenant, r.backend, r.code]), [['a.example', `127.0.0.1:${downA}`, 'BACKEND_CONNECT']]);

      const down = await curl(failover.port, '1', 'alice@b.example', PW_B);
      assert.notEqual(down.code, 0, 'curl fails when no backend is up');
      assert.equal(down.stdout.length, 0);
      const replies = await pop3Dialog({ port: failover.port }, ['USER alice@b.example', `PASS ${PW_B}`, 'QUIT']);
      assert.deepEqual(replies, [GREETING, '+OK', TEMP_FAILURE, '+OK Bye']);
      const failedB = failover.logs.records().filter((r) => r.message === 'backend failed' && r.tenant === 'b.example');
      // Both backends tried, in order, by curl's session and by the dialog's.
      const expected = [`127.0.0.1:${downB1}`, `127.0.0.1:${downB2}`];
      assert.deepEqual(failedB.map((r) => r.backend), [...expected, ...expected]);
      await idle(failover.listener);
    } finally {
      await failover.concierge.close();
    }
  });

  test('afterwards no session, dovecot process or directory is left', TEST_TIMEOUT, async () => {
    await idle(P().listener);
    assert.equal(P().listener.sessionCount, 0);
    const sessions = P().concierge.traffic;
    assert.ok((sessions.get('a.example')?.sessions ?? 0) > 0 && (sessions.get('b.example')?.sessions ?? 0) > 0, 'both tenants were served');
    await P().concierge.close();
    const dovecots = [A(), B()];
    assert.ok(dovecots.every((d) => processesMentioning(d.dir).length >= 2), 'each dovecot was running until now');
    await Promise.all(dovecots.map((d) => d.stop()));
    for (const d of dovecots) {
      assert.deepEqual(processesMentioning(d.dir), [], `processes of ${d.dir}`);
      assert.equal(existsSync(d.dir), false, d.dir);
      await assert.rejects(connectOnce(d.port), { code: 'ECONNREFUSED' });
    }
    await assert.rejects(connectOnce(P().port), { code: 'ECONNREFUSED' });
  });
});
