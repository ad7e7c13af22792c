import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, effectiveLimits, loadConfig, parseConfig } from '../src/config.js';
import { problemsOf } from './support/config-problems.js';

const listener = { protocol: 'pop3', address: '127.0.0.1', port: 1110 };
const tenant = (domain: string, extra: Record<string, unknown> = {}) => ({ domain, sourceAddress: '127.0.0.2', backends: { pop3: [{ host: '127.0.0.1', port: 11001 }] }, ...extra });

describe('config validation', () => {
  test('the repository’s tenants.json is valid', async () => {
    const config = await loadConfig(path.join(import.meta.dirname, '..', 'tenants.json'));
    assert.deepEqual(config.tenants.map((t) => [t.domain, t.sourceAddress]), [['a.example', '127.0.0.2'], ['b.example', '127.0.0.3']]);
    assert.ok(path.isAbsolute(config.demo!.pop3Servers[0]!.maildir));
  });

  test('defaults fill what is left out', () => {
    const config = parseConfig({ listeners: [listener], tenants: [{ domain: 'A.Example', backends: { pop3: [{ host: 'localhost', port: 1 }] } }] });
    assert.deepEqual(config.login.separators, ['@']);
    assert.equal(config.tenants[0]!.domain, 'a.example', 'domains are lower-cased');
    assert.equal(config.tenants[0]!.backendUser, 'local');
    assert.deepEqual(config.tenants[0]!.backends.ftp, []);
    assert.equal(config.limits.maxLoginAttempts, 3);
    assert.equal(config.limits.loginTimeoutMs, 60_000);
  });

  test('every problem is reported with its JSON path', () => {
    const problems = problemsOf({
      listeners: [{ ...listener, port: 70000, colour: 'blue' }],
      tenants: [tenant('a.example', { sourceAddress: '300.1.1.1' }), { domain: 'not a domain', backends: { pop3: [{ host: 'x', port: 0 }] } }],
    });
    const paths = problems.map((p) => p.slice(0, p.indexOf(':')));
    assert.ok(paths.includes('listeners[0].port'), problems.join('\n'));
    assert.ok(paths.includes('listeners[0]'), 'unknown field colour');
    assert.ok(paths.includes('tenants[0].sourceAddress'));
    assert.ok(paths.includes('tenants[1].domain'));
    assert.ok(paths.includes('tenants[1].backends.pop3[0].port'));
  });

  test('a domain or alias may appear only once across tenants', () => {
    const problems = problemsOf({ listeners: [listener], tenants: [tenant('a.example', { aliases: ['b.example'] }), tenant('B.example')] });
    assert.deepEqual(problems, ['tenants[1].domain: "b.example" is already used at tenants[0].aliases[0]']);
  });

  test('a local address may belong to one tenant only', () => {
    const problems = problemsOf({ listeners: [listener], tenants: [tenant('a.example', { localAddresses: ['192.0.2.1'] }), tenant('b.example', { localAddresses: ['192.0.2.1'] })] });
    assert.match(problems[0]!, /^tenants\[1\]\.localAddresses\[0\]: 192\.0\.2\.1 is already used/);
  });

  test('overlapping listeners are refused, a wildcard included', () => {
    assert.equal(problemsOf({ listeners: [listener, { ...listener }] }).length, 1);
    assert.match(problemsOf({ listeners: [listener, { ...listener, address: '0.0.0.0' }] })[0]!, /^listeners\[1\]: .* overlaps listeners\[0\]/);
    assert.doesNotThrow(() => parseConfig({ listeners: [listener, { ...listener, address: '127.0.0.5' }] }));
  });

  test('timeouts must nest: connect and backend reply inside login, login inside idle', () => {
    const problems = problemsOf({ listeners: [listener], limits: { connectTimeoutMs: 90_000, idleTimeoutMs: 1_000 } });
    assert.deepEqual(problems, [
      'limits.connectTimeoutMs: must be less than loginTimeoutMs (60000)',
      'limits.loginTimeoutMs: must not exceed idleTimeoutMs (1000)',
    ]);
    const perListener = problemsOf({ listeners: [{ ...listener, limits: { authFailDelayMs: 59_000, loginTimeoutMs: 50_000 } }] });
    assert.deepEqual(perListener, ['listeners[0].limits.authFailDelayMs: must be less than loginTimeoutMs (50000)']);
  });

  test('a listener’s limits override the top-level ones field by field, never with built-in defaults', () => {
    const config = parseConfig({ listeners: [{ ...listener, limits: { maxErrors: 5 } }, { ...listener, port: 1111, limits: {} }], limits: { maxErrors: 3, authFailDelayMs: 500 } });
    assert.deepEqual([effectiveLimits(config, config.listeners[0]!).maxErrors, effectiveLimits(config, config.listeners[0]!).authFailDelayMs], [5, 500]);
    assert.deepEqual([effectiveLimits(config, config.listeners[1]!).maxErrors, effectiveLimits(config, config.listeners[1]!).authFailDelayMs], [3, 500]);
  });

  test('a dual-stack wildcard overlaps every address on its port', () => {
    const problems = problemsOf({ listeners: [{ ...listener, address: '::' }, { ...listener, address: '0.0.0.0' }, { ...listener, address: '127.0.0.1', port: 1111 }, { ...listener, address: '0.0.0.0', port: 1111 }] });
    assert.deepEqual(problems, ['listeners[1]: 0.0.0.0:1110 overlaps listeners[0] (:::1110)', 'listeners[3]: 0.0.0.0:1111 overlaps listeners[2] (127.0.0.1:1111)']);
  });

  test('a port out of range says so; a top-level limit problem is reported once', () => {
    const problems = problemsOf({ listeners: [{ ...listener, port: 70000 }], tenants: [tenant('a.example', { backends: { pop3: [{ host: 'x', port: 0 }] } })] });
    assert.deepEqual(problems, ['listeners[0].port: must be a port from 0 (any free port) to 65535', 'tenants[0].backends.pop3[0].port: must be a port from 1 to 65535']);
    const twice = problemsOf({ listeners: [listener, { ...listener, port: 1111 }], limits: { connectTimeoutMs: 90_000 } });
    assert.deepEqual(twice, ['limits.connectTimeoutMs: must be less than loginTimeoutMs (60000)']);
  });

  test('a banner cannot smuggle a line break into the greeting', () => {
    assert.deepEqual(problemsOf({ listeners: [{ ...listener, banner: 'hi\r\n+OK fake' }] }).map((p) => p.split(':')[0]), ['listeners[0].banner']);
  });

  test('a file that is not JSON names the problem', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'concierge-cfg-'));
    try {
      const file = path.join(dir, 'bad.json');
      await writeFile(file, '{ "listeners": [ }');
      await assert.rejects(loadConfig(file), (err: unknown) => err instanceof ConfigError && /not valid JSON/.test(err.problems[0]!));
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

describe('config validation: FTP listeners', () => {
  const ftp = { protocol: 'ftp', address: '127.0.0.1', port: 2121, passivePorts: { from: 50000, to: 50099 } };

  test('an ftp listener takes a passive range, an optional passive address and backend data mode', () => {
    const config = parseConfig({ listeners: [{ ...ftp, passiveAddress: '192.0.2.1', backendDataMode: 'active' }], tenants: [tenant('a.example', { backends: { ftp: [{ host: '127.0.0.1', port: 2100 }] } })] });
    const l = config.listeners[0]!;
    assert.deepEqual([l.protocol, l.passivePorts, l.passiveAddress, l.backendDataMode], ['ftp', { from: 50000, to: 50099 }, '192.0.2.1', 'active']);
    assert.equal(config.limits.dataConnectTimeoutMs, 30_000);
    assert.equal(parseConfig({ listeners: [ftp] }).listeners[0]!.backendDataMode, undefined, 'passive is the default, applied by the FTP module');
  });

  test('an ftp listener without passivePorts, or with a reversed range, is refused', () => {
    const { passivePorts: _, ...bare } = ftp;
    assert.deepEqual(problemsOf({ listeners: [bare] }), ['listeners[0].passivePorts: an ftp listener needs a passive port range { "from": …, "to": … }']);
    assert.deepEqual(problemsOf({ listeners: [{ ...ftp, passivePorts: { from: 50100, to: 50000 } }] }), ['listeners[0].passivePorts: from (50100) must not exceed to (50000)']);
  });

  test('passive ranges of two listeners must not overlap, nor contain a listener port', () => {
    const second = { ...ftp, port: 2122, passivePorts: { from: 50099, to: 50199 } };
    assert.deepEqual(problemsOf({ listeners: [ftp, second] }), ['listeners[1].passivePorts: 50099-50199 overlaps listeners[0].passivePorts (50000-50099)']);
    assert.deepEqual(problemsOf({ listeners: [ftp, { ...listener, port: 50050 }] }), ['listeners[0].passivePorts: 50000-50099 contains listeners[1].port (50050)']);
    assert.doesNotThrow(() => parseConfig({ listeners: [ftp, { ...second, passivePorts: { from: 50100, to: 50199 } }] }));
  });

  test('FTP fields on a POP3 listener, a bad mode or an IPv6 passive address name their path', () => {
    assert.deepEqual(problemsOf({ listeners: [{ ...listener, passivePorts: { from: 50000, to: 50001 } }] }), ['listeners[0].passivePorts: only an ftp listener takes passivePorts']);
    const paths = problemsOf({ listeners: [{ ...ftp, backendDataMode: 'extended', passiveAddress: '::1' }] }).map((p) => p.slice(0, p.indexOf(':')));
    assert.deepEqual(paths.sort(), ['listeners[0].backendDataMode', 'listeners[0].passiveAddress']);
  });

  test('the data connection timeout must fit inside the idle timeout', () => {
    assert.deepEqual(problemsOf({ listeners: [ftp], limits: { dataConnectTimeoutMs: 700_000 } }), ['limits.dataConnectTimeoutMs: must not exceed idleTimeoutMs (600000)']);
  });
});
