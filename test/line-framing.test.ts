import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineFraming } from '../src/line-framing.js';

/** Everything `framing` can hand out now: line texts, or the kind of a refused line. */
function takeAll(framing: LineFraming, limit: number): string[] {
  const out: string[] = [];
  for (let event = framing.take(limit); event; event = framing.take(limit)) out.push(event.kind === 'line' ? event.line : `<${event.kind}>`);
  return out;
}

const bytes = (text: string) => Buffer.from(text, 'latin1');

test('lines split across chunks come whole and in order; a partial line waits', () => {
  const framing = new LineFraming();
  framing.append(bytes('EHLO a\r\nMAIL FROM:<x>\r\nRC'));
  assert.deepEqual(takeAll(framing, 512), ['EHLO a', 'MAIL FROM:<x>']);
  assert.equal(framing.size, 2);
  framing.append(bytes('PT TO:<y>\r\nbare LF\n'));
  assert.deepEqual(takeAll(framing, 512), ['RCPT TO:<y>', 'bare LF']);
  assert.equal(framing.size, 0);
});

test('NUL or a bare CR anywhere in a line makes it invalid, short or past the quick scan', () => {
  const framing = new LineFraming();
  framing.append(bytes('a\rb\r\nc\0d\r\nok\r\n\r\r\n'));
  assert.deepEqual(takeAll(framing, 512), ['<invalid>', '<invalid>', 'ok', '<invalid>']);
  const long = 'z'.repeat(300);
  framing.append(bytes(`${long}\r\n${long}\0\r\n${long}\rz\r\n`));
  assert.deepEqual(takeAll(framing, 1000), [long, '<invalid>', '<invalid>']);
});

test('an over-long line is refused once and its rest dropped unseen, up to its LF', () => {
  const framing = new LineFraming();
  framing.append(bytes('x'.repeat(30)));
  assert.deepEqual(takeAll(framing, 20), ['<tooLong>']);
  assert.equal(framing.size, 0);
  framing.append(bytes('still the long line\r\nafter\r\n'));
  assert.deepEqual(takeAll(framing, 20), ['after']);
  framing.append(bytes(`${'y'.repeat(25)}\r\nnext\r\n`));
  assert.deepEqual(takeAll(framing, 20), ['<tooLong>', 'next'], 'a whole over-long line in one chunk');
});

test('takeAll and unread hand back exactly the bytes not taken', () => {
  const framing = new LineFraming();
  framing.append(bytes('abc\r\nde'));
  assert.deepEqual(takeAll(framing, 512), ['abc']);
  framing.unread(bytes('X\r\n'));
  assert.deepEqual(takeAll(framing, 512), ['X']);
  assert.equal(framing.takeAll().toString('latin1'), 'de');
  assert.equal(framing.size, 0);
  assert.equal(framing.take(512), undefined);
});
