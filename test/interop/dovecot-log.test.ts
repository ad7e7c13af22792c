// The log parser fed real dovecot 2.3.19 lines (captured from this harness); no dovecot needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failedLoginLine, loginLine, parseLogins } from './dovecot-log.js';

const log = [
  'Nov 23 00:38:41 master: Info: Dovecot v2.3.19.1 (9b53102964) starting up for pop3 (core dumps disabled)',
  'Nov 23 00:38:41 pop3-login: Info: Disconnected: Connection closed (no auth attempts in 0 secs): user=<>, rip=127.0.0.1, lip=127.0.0.1, secured, session=<7ge/0OZgKLt/AAAB>',
  'Nov 23 00:38:42 pop3-login: Info: Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=6029, secured, session=<NqTO0OZgPrt/AAAB>',
  'Nov 23 00:38:42 pop3(alice)<6029><NqTO0OZgPrt/AAAB>: Info: Disconnected: Logged out top=0/0, retr=0/0, del=0/1, size=22',
  'Nov 23 00:39:07 auth: Info: passwd-file(alice,127.0.0.2,<dPNO0uZg04t/AAAC>): Password mismatch',
  'Nov 23 00:39:07 pop3-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<alice>, method=PLAIN, rip=127.0.0.2, lip=127.0.0.1, session=<dPNO0uZg04t/AAAC>',
  'Nov 23 00:39:07 pop3-login: Info: Login: user=<alice@a.example>, method=LOGIN, rip=127.0.0.3, lip=127.0.0.1, mpid=6161, session=<osBX0uZgC6F/AAAD>',
  'Nov 23 00:39:08 pop3-login: Info: Disconnected: Connection closed: read(size=1024) failed: Connection reset by peer (auth failed, 2 attempts in 1 secs): user=<bob>, method=PLAIN, rip=127.0.0.3, lip=127.0.0.1, session=<x>',
  '',
].join('\n');

test('successful logins: user, rip, lip and method, in log order', () => {
  assert.deepEqual(parseLogins(log, loginLine), [
    { user: 'alice', rip: '127.0.0.1', lip: '127.0.0.1', method: 'PLAIN' },
    { user: 'alice@a.example', rip: '127.0.0.3', lip: '127.0.0.1', method: 'LOGIN' },
  ]);
});

test('failed logins, including a reason that holds parentheses; "no auth attempts" is not one', () => {
  assert.deepEqual(parseLogins(log, failedLoginLine), [
    { user: 'alice', rip: '127.0.0.2', lip: '127.0.0.1', method: 'PLAIN' },
    { user: 'bob', rip: '127.0.0.3', lip: '127.0.0.1', method: 'PLAIN' },
  ]);
});
