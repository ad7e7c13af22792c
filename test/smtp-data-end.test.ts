import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyLineChecker, DataEndScanner } from '../proxies/smtp/data-end.js';
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

test('a CR or LF outside CRLF, or a line over 1000 octets, is found wherever the chunks are cut', () => {
  const fault = (text: string, step: number) => {
    const checker = new BodyLineChecker();
    const bytes = Buffer.from(text, 'latin1');
    for (let at = 0; at < bytes.length; at += step) {
      const found = checker.scan(bytes.subarray(at, at + step));
      if (found) return found;
    }
    return undefined;
  };
  const longest = `${'x'.repeat(998)}\r\n`;
  for (const step of [1, 2, 3, 5, 7, 12, 500, 999, 1000, 1001, 4096]) {
    assert.equal(fault(`a\r\nb\r\n\r\n8-bit \xe9\r\n${longest}${longest}`, step), undefined, `clean, step ${step}`);
    assert.equal(fault('a\r\nb\n.\nc\r\n', step), 'bareLineEnd', `bare LF, step ${step}`);
    assert.equal(fault('a\r\nb\r.\r\n', step), 'bareLineEnd', `bare CR, step ${step}`);
    assert.equal(fault('\nfirst', step), 'bareLineEnd', `LF at the very start, step ${step}`);
    assert.equal(fault(`ok\r\n${'y'.repeat(999)}\r\n`, step), 'lineTooLong', `1001 octets, step ${step}`);
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
