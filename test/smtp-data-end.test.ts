import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BareLineEndScanner, DataEndScanner } from '../proxies/smtp/data-end.js';
import { parsePath } from '../proxies/smtp/commands.js';

/** Feeds `text` cut at every `step` bytes; returns the offset in the whole stream just past the end mark. */
function endOf(text: string, step: number): number {
  const scanner = new DataEndScanner();
  const bytes = Buffer.from(text, 'latin1');
  for (let at = 0; at < bytes.length; at += step) {
    const end = scanner.scan(bytes.subarray(at, at + step));
    if (end >= 0) return at + end;
  }
  return -1;
}

test('the end of DATA is found wherever the chunks are cut, and only at a line start', () => {
  const body = 'a\r\n..b\r\n.x\r\nc\r\n.\r\nMAIL FROM:<x>\r\n';
  for (let step = 1; step <= body.length; step++) assert.equal(endOf(body, step), body.indexOf('\r\n.\r\n') + 5, `step ${step}`);
  assert.equal(endOf('.\r\nrest', 1), 3, 'an empty body');
  assert.equal(endOf('a\n.\nb\r\n', 2), -1, 'bare LFs are no end');
});

test('a CR or LF outside CRLF is found wherever the chunks are cut', () => {
  const bare = (text: string, step: number) => {
    const scanner = new BareLineEndScanner();
    const bytes = Buffer.from(text, 'latin1');
    for (let at = 0; at < bytes.length; at += step) if (scanner.scan(bytes.subarray(at, at + step))) return true;
    return false;
  };
  for (let step = 1; step <= 12; step++) {
    assert.equal(bare('a\r\nb\r\n\r\n8-bit \xe9\r\n', step), false, `clean, step ${step}`);
    assert.equal(bare('a\r\nb\n.\nc\r\n', step), true, `bare LF, step ${step}`);
    assert.equal(bare('a\r\nb\r.\r\n', step), true, `bare CR, step ${step}`);
    assert.equal(bare('\nfirst', step), true, `LF at the very start, step ${step}`);
  }
});

test('MAIL / RCPT paths: parameters, the null sender, and what is refused', () => {
  assert.deepEqual([...parsePath('FROM:<a@b.example> SIZE=10 BODY=8BITMIME', 'FROM')!.params], [['SIZE', '10'], ['BODY', '8BITMIME']]);
  assert.equal(parsePath('FROM:<>', 'FROM')!.address, '');
  assert.equal(parsePath('from: <a@b.example>', 'FROM')!.address, 'a@b.example');
  for (const bad of ['TO:<>', 'TO:<a b@c.example>', 'TO:a@b.example', 'TO:<a@b.example>x', 'TO:<@relay:a@b.example>', `TO:<${'a'.repeat(300)}@b.example>`]) {
    assert.equal(parsePath(bad, 'TO'), undefined, bad);
  }
});
