// The interop harness on its own, no proxy: a private dovecot, curl as the client, raw sockets
// bound to the tenant source addresses. Missing dovecot or curl fails here; it never skips.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { CURL_MISSING, curlPop3 } from './curl.js';
import { DOVECOT_MISSING, dovecotAvailable, startDovecot, type DovecotInstance } from './dovecot.js';
import { messageBytes } from './maildir.js';
import { pop3Dialog } from './pop3-dialog.js';
import { processesMentioning } from './processes.js';
import { connectOnce } from './daemon-wait.js';

const aliceMessages = [
  'From: carol@example.org\nTo: alice@a.example\nSubject: one\n\nHello Alice.\n',
  // Dot lines: dovecot dot-stuffs them on the wire, curl must undo it.
  'Subject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nlast line\r\n',
  Buffer.concat([
    Buffer.from('Subject: three\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\n'),
    Buffer.from([0xe9, 0xe8, 0xff, 0x80, 0x0d, 0x0a]),
  ]),
];
const bobMessages = ['Subject: for bob\n\nHi Bob.\n'];
const users = [
  { user: 'alice', password: 'alice-secret', messages: aliceMessages },
  { user: 'bob', password: 'b0b-s3cret', messages: bobMessages },
];

test('dovecot and curl are installed', () => {
  assert.ok(dovecotAvailable(), DOVECOT_MISSING);
  assert.equal(spawnSync('curl', ['--version']).status, 0, CURL_MISSING);
});

describe('dovecot harness', () => {
  let dovecot: DovecotInstance;
  let base: string;

  before(async () => {
    dovecot = await startDovecot({ users });
    base = `pop3://${dovecot.host}:${dovecot.port}`;
  });
  after(async () => {
    await dovecot?.stop();
    if (dovecot !== undefined) assert.deepEqual(processesMentioning(dovecot.dir), []);
  });

  test('curl lists alice\'s messages with their exact sizes', async () => {
    const res = await curlPop3(`${base}/`, 'alice', 'alice-secret');
    assert.equal(res.code, 0, res.stderr);
    const expected = aliceMessages.map((m, i) => `${i + 1} ${messageBytes(m).length}\r\n`).join('');
    assert.equal(res.stdout.toString('latin1'), expected);
  });

  test('curl retrieves every message byte for byte', async () => {
    for (const [i, message] of aliceMessages.entries()) {
      const res = await curlPop3(`${base}/${i + 1}`, 'alice', 'alice-secret');
      assert.equal(res.code, 0, res.stderr);
      assert.deepEqual(res.stdout, messageBytes(message), `message ${i + 1}`);
    }
    const res = await curlPop3(`${base}/1`, 'bob', 'b0b-s3cret');
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(res.stdout, messageBytes(bobMessages[0] ?? ''));
  });

  // curl spells a preferred SASL mechanism AUTH=<MECH>; only +APOP takes a '+' (AUTH=+LOGIN exits 3).
  test('curl logs in with AUTH=PLAIN and AUTH=LOGIN', async () => {
    for (const [option, method] of [['AUTH=PLAIN', 'PLAIN'], ['AUTH=LOGIN', 'LOGIN']] as const) {
      const seen = (await dovecot.logins()).length;
      const res = await curlPop3(`${base}/`, 'bob', 'b0b-s3cret', ['--login-options', option]);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout.toString('latin1'), `1 ${messageBytes(bobMessages[0] ?? '').length}\r\n`);
      const logins = await dovecot.logins({ atLeast: seen + 1 });
      assert.deepEqual(logins.at(-1), { user: 'bob', rip: '127.0.0.1', lip: '127.0.0.1', method });
    }
  });

  test('a wrong password or an unknown user makes curl fail with "login denied"', async () => {
    const seenFailures = (await dovecot.failedLogins()).length;
    const seenLogins = (await dovecot.logins()).length;
    for (const [user, password] of [['alice', 'wrong'], ['nobody-here', 'alice-secret']] as const) {
      const res = await curlPop3(`${base}/1`, user, password);
      assert.notEqual(res.code, 0);
      assert.equal(res.code, 67, res.stderr); // CURLE_LOGIN_DENIED
      assert.equal(res.stdout.length, 0);
    }
    const failures = await dovecot.failedLogins({ atLeast: seenFailures + 2 });
    assert.deepEqual(
      failures.slice(seenFailures).map((f) => [f.user, f.rip]).sort(),
      [['alice', '127.0.0.1'], ['nobody-here', '127.0.0.1']],
    );
    assert.equal((await dovecot.logins()).length, seenLogins);
  });

  test('a direct curl login is logged with rip 127.0.0.1', async () => {
    const seen = (await dovecot.logins()).length;
    const res = await curlPop3(`${base}/`, 'alice', 'alice-secret');
    assert.equal(res.code, 0, res.stderr);
    const logins = await dovecot.logins({ atLeast: seen + 1 });
    assert.deepEqual(logins.slice(seen), [{ user: 'alice', rip: '127.0.0.1', lip: '127.0.0.1', method: 'PLAIN' }]);
  });

  test('USER/PASS from a socket bound to a tenant address is logged with that rip', async () => {
    const seen = (await dovecot.logins()).length;
    const alice = await pop3Dialog({ port: dovecot.port, localAddress: '127.0.0.2' }, [
      'USER alice',
      'PASS alice-secret',
      'STAT',
      'QUIT',
    ]);
    assert.match(alice[0] ?? '', /^\+OK /);
    assert.match(alice[2] ?? '', /^\+OK Logged in/);
    const aliceSize = aliceMessages.reduce((n, m) => n + messageBytes(m).length, 0);
    assert.equal(alice[3], `+OK 3 ${aliceSize}`);
    const bob = await pop3Dialog({ port: dovecot.port, localAddress: '127.0.0.3' }, ['USER bob', 'PASS b0b-s3cret', 'QUIT']);
    assert.match(bob[2] ?? '', /^\+OK Logged in/);

    const logins = await dovecot.logins({ atLeast: seen + 2 });
    assert.deepEqual(logins.slice(seen), [
      { user: 'alice', rip: '127.0.0.2', lip: '127.0.0.1', method: 'PLAIN' },
      { user: 'bob', rip: '127.0.0.3', lip: '127.0.0.1', method: 'PLAIN' },
    ]);
  });

  test('a failed USER/PASS from a tenant address is logged with that rip', async () => {
    const seen = (await dovecot.failedLogins()).length;
    const replies = await pop3Dialog({ port: dovecot.port, localAddress: '127.0.0.3' }, ['USER bob', 'PASS nope', 'QUIT']);
    assert.match(replies[2] ?? '', /^-ERR /);
    const failures = await dovecot.failedLogins({ atLeast: seen + 1 });
    assert.deepEqual(failures.slice(seen), [{ user: 'bob', rip: '127.0.0.3', lip: '127.0.0.1', method: 'PLAIN' }]);
  });
});

test('stop() ends every dovecot process, frees the port and removes the directory', async (t) => {
  const started = Date.now();
  const dovecot = await startDovecot({ users: [{ user: 'carol', password: 'pw', messages: [] }] });
  const startMs = Date.now() - started;
  let stopping = 0;
  try {
    assert.ok(processesMentioning(dovecot.dir).length >= 2, 'master and helpers are running');
    const res = await curlPop3(`pop3://${dovecot.host}:${dovecot.port}/`, 'carol', 'pw');
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout.toString('latin1').trim(), ''); // curl 7.88 prints a bare CRLF for an empty LIST
  } finally {
    stopping = Date.now();
    await dovecot.stop();
  }
  await dovecot.stop(); // idempotent
  t.diagnostic(`dovecot started in ${startMs} ms, stopped in ${Date.now() - stopping} ms`);
  assert.deepEqual(processesMentioning(dovecot.dir), []);
  assert.equal(existsSync(dovecot.dir), false);
  await assert.rejects(connectOnce(dovecot.port), { code: 'ECONNREFUSED' });
});

test('startDovecot rejects user names that would break the passwd-file', async () => {
  await assert.rejects(startDovecot({ users: [{ user: 'a:b', password: 'x', messages: [] }] }), /may not contain/);
  await assert.rejects(startDovecot({ users: [{ user: 'dup', password: 'x', messages: [] }, { user: 'dup', password: 'y', messages: [] }] }), /duplicate/);
});

