import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.js';
import { loadConfigOffThread } from '../src/config-off-thread.js';

test('loadConfigOffThread: the same config as loadConfig for a valid file, the same problems for an invalid one', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-off-thread-'));
  try {
    const good = path.join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 0 }], tenants: [{ domain: 'A.example', backends: { pop3: [{ host: '127.0.0.1', port: 11001 }] } }] }));
    assert.deepEqual(await loadConfigOffThread(good), await loadConfig(good));

    const bad = path.join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ listeners: [{ protocol: 'imap4', address: '127.0.0.1', port: 0 }] }));
    const expected = await loadConfig(bad).catch((err: unknown) => err);
    const actual = await loadConfigOffThread(bad).catch((err: unknown) => err);
    assert.ok(actual instanceof ConfigError);
    assert.deepEqual(actual.problems, (expected as ConfigError).problems);

    const missing = await loadConfigOffThread(path.join(dir, 'missing.json')).catch((err: unknown) => err);
    assert.ok(missing instanceof ConfigError);
    assert.match(missing.problems[0]!, /cannot read/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
