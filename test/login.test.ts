import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseLogin } from '../src/login.js';

test('parseLogin splits at the last separator and lower-cases the domain', () => {
  assert.deepEqual(parseLogin('alice@A.Example', ['@']), { user: 'alice', domain: 'a.example' });
  assert.deepEqual(parseLogin('a@b@c.example', ['@']), { user: 'a@b', domain: 'c.example' });
  assert.deepEqual(parseLogin('alice%a.example', ['@', '%']), { user: 'alice', domain: 'a.example' });
  assert.deepEqual(parseLogin('alice', ['@']), { user: 'alice', domain: undefined });
});

test('parseLogin refuses what must never reach a backend line', () => {
  for (const bad of ['', '@a.example', 'alice@', 'al ice@a.example', 'alice@a.example\r\nDELE 1', 'a\0b@a.example', 'x'.repeat(321)]) {
    assert.equal(parseLogin(bad, ['@']), undefined, JSON.stringify(bad));
  }
});
