import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '../src/config.js';
import { problemsOf } from './support/config-problems.js';

const smtp = { protocol: 'smtp', address: '127.0.0.1', port: 2525 };
const tenant = (extra: Record<string, unknown> = {}) => ({ domain: 'a.example', sourceAddress: '127.0.0.2', backends: { smtp: [{ host: '127.0.0.1', port: 13001, ...extra }] } });

describe('SMTP config', () => {
  test('an smtp listener in either mode, with its hostname, SIZE and backend options', () => {
    const config = parseConfig({
      listeners: [
        { ...smtp, mode: 'mx', hostname: 'mx.example.net', maxMessageSize: 10_485_760, greetingDelayMs: 100 },
        { ...smtp, port: 2587, mode: 'submission' },
      ],
      tenants: [tenant({ xclient: true }), { domain: 'b.example', backends: { smtp: [{ host: '127.0.0.1', port: 13002, sendProxyProtocol: 'v2' }] } }],
    });
    assert.deepEqual(config.listeners.map((l) => [l.protocol, l.mode, l.hostname, l.maxMessageSize]), [
      ['smtp', 'mx', 'mx.example.net', 10_485_760],
      ['smtp', 'submission', undefined, undefined],
    ]);
    assert.equal(config.tenants[0]!.backends.smtp[0]!.xclient, true);
    assert.equal(config.tenants[1]!.backends.smtp[0]!.sendProxyProtocol, 'v2');
  });

  test('field errors name their JSON path', () => {
    const problems = problemsOf({
      listeners: [{ ...smtp, mode: 'smtps', hostname: 'not a host', maxMessageSize: 10 }],
      tenants: [tenant({ sendProxyProtocol: 2, xclient: 'yes' })],
    });
    const paths = problems.map((p) => p.slice(0, p.indexOf(':'))).sort();
    assert.deepEqual(paths, ['listeners[0].hostname', 'listeners[0].maxMessageSize', 'listeners[0].mode', 'tenants[0].backends.smtp[0].sendProxyProtocol', 'tenants[0].backends.smtp[0].xclient']);
  });

  test('SMTP fields belong to smtp listeners and smtp backends only', () => {
    const problems = problemsOf({
      listeners: [{ protocol: 'pop3', address: '127.0.0.1', port: 1110, mode: 'mx', maxMessageSize: 2048 }],
      tenants: [{ domain: 'a.example', backends: { pop3: [{ host: '127.0.0.1', port: 11001, xclient: true }] } }],
    });
    assert.deepEqual(problems, [
      'listeners[0].mode: only an smtp listener takes mode',
      'listeners[0].maxMessageSize: only an smtp listener takes maxMessageSize',
      'tenants[0].backends.pop3[0].xclient: only an smtp backend takes xclient',
    ]);
  });

  test('one way of passing the client identity per backend; the greeting delay fits the login timeout; only mx holds it', () => {
    assert.deepEqual(problemsOf({ listeners: [smtp], tenants: [tenant({ xclient: true, sendProxyProtocol: 'v1' })] }), [
      "tenants[0].backends.smtp[0]: xclient and sendProxyProtocol both pass the client's identity: choose one",
    ]);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, greetingDelayMs: 20_000, limits: { loginTimeoutMs: 15_000 } }], tenants: [] }), [
      'listeners[0].greetingDelayMs: must be less than loginTimeoutMs (15000)',
    ]);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, mode: 'submission', greetingDelayMs: 10 }], tenants: [] }), ['listeners[0].greetingDelayMs: only an mx listener holds its greeting back']);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, mode: 'relay' }, { ...smtp, port: 2526, identifyBy: ['auth'] }], tenants: [] }), [
      'listeners[0].mode: a relay listener needs the top-level "relay" section (spool, …)',
      'listeners[1].identifyBy: only a relay listener identifies senders',
    ]);
  });

  test('smtputf8 and dsn are mx listener options', () => {
    assert.deepEqual(parseConfig({ listeners: [{ ...smtp, smtputf8: true, dsn: true }], tenants: [] }).listeners.map((l) => [l.smtputf8, l.dsn]), [[true, true]]);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, mode: 'submission', dsn: true }, { protocol: 'ftp', address: '127.0.0.1', port: 2121, passivePorts: { from: 40000, to: 40010 }, dsn: false }], tenants: [] }), [
      'listeners[0].dsn: only an mx listener takes dsn',
      'listeners[1].dsn: only an smtp listener takes dsn',
    ]);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, mode: 'submission', smtputf8: true }, { protocol: 'pop3', address: '127.0.0.1', port: 1110, smtputf8: true }], tenants: [] }), [
      'listeners[0].smtputf8: only an mx listener takes smtputf8 (a relay listener always offers SMTPUTF8)',
      'listeners[1].smtputf8: only an smtp listener takes smtputf8',
    ]);
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, smtputf8: 'yes' }], tenants: [] }), ['listeners[0].smtputf8: Invalid input: expected boolean, received string']);
  });

  test('backendPool is an mx listener option, within its bounds', () => {
    assert.deepEqual(parseConfig({ listeners: [{ ...smtp, backendPool: { maxIdle: 0 } }], tenants: [] }).listeners[0]!.backendPool, { maxIdle: 0 });
    assert.deepEqual(problemsOf({ listeners: [{ ...smtp, mode: 'submission', backendPool: {} }, { protocol: 'pop3', address: '127.0.0.1', port: 1110, backendPool: {} }], tenants: [] }), [
      'listeners[0].backendPool: only an mx listener keeps backend connections between sessions',
      'listeners[1].backendPool: only an smtp listener takes backendPool',
    ]);
    assert.equal(problemsOf({ listeners: [{ ...smtp, backendPool: { idleTimeoutMs: 10 } }], tenants: [] }).length, 1);
  });
});
