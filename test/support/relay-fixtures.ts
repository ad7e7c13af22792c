import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { parseConfig } from '../../src/config.js';
import { startConcierge, type Concierge } from '../../src/concierge.js';
import type { QueuedMessage } from '../../relay/spool.js';
import { captureLogs } from './logs.js';
import { SmtpBackend } from './smtp-backend.js';

export const SUBMIT_PASSWORD = 'submit-pw-of-alice';

/** A relay with tenants a.example (127.0.0.2) and b.example (127.0.0.3) and the host (127.0.0.1). */
export interface RelayEnv {
  readonly concierge: Concierge;
  readonly port: number;
  readonly spool: string;
  readonly config: Record<string, unknown>;
  /** a.example's submission server: the relay checks AUTH against it. */
  readonly submission: SmtpBackend;
  readonly logs: ReturnType<typeof captureLogs>;
  close(): Promise<void>;
}

/** Relay config for tests: `transports` maps recipient domains to receivers; `relay` patches the rest. */
export function relayConfig(
  spool: string,
  transports: Record<string, string>,
  options: { relay?: Record<string, unknown>; listener?: Record<string, unknown>; submissionPort?: number; tenantA?: Record<string, unknown>; limits?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    log: { level: 'debug' },
    limits: { authFailDelayMs: 50, loginTimeoutMs: 5_000, connectTimeoutMs: 1_000, backendReplyTimeoutMs: 2_000, idleTimeoutMs: 20_000, ...options.limits },
    listeners: [{ protocol: 'smtp', mode: 'relay', address: '127.0.0.1', port: 0, hostname: 'relay.concierge.test', identifyBy: ['auth', 'address', 'mailFrom'], ...options.listener }],
    relay: {
      spool,
      host: { heloName: 'host.concierge.test', sourceAddress: '127.0.0.1', relayFrom: ['127.0.0.1'] },
      transports,
      retryInitialMs: 100,
      retryMaxMs: 400,
      connectTimeoutMs: 1_000,
      replyTimeoutMs: 5_000,
      dataEndTimeoutMs: 5_000,
      connectionIdleMs: 2_000,
      ...options.relay,
    },
    tenants: [
      {
        domain: 'a.example',
        sourceAddress: '127.0.0.2',
        relayFrom: ['127.0.0.12'],
        backends: { smtp: options.submissionPort ? [{ host: '127.0.0.1', port: options.submissionPort }] : [] },
        ...options.tenantA,
      },
      { domain: 'b.example', sourceAddress: '127.0.0.3', relayFrom: ['127.0.0.13'], heloName: 'out.b.example' },
    ],
  };
}

export async function startRelay(transports: Record<string, string>, options: Parameters<typeof relayConfig>[2] & { spool?: string } = {}): Promise<RelayEnv> {
  const submission = new SmtpBackend({ users: { alice: SUBMIT_PASSWORD } });
  await submission.listen();
  const spool = options.spool ?? (await mkdtemp(path.join(os.tmpdir(), 'concierge-relay-')));
  const logs = captureLogs('debug');
  const config = relayConfig(spool, transports, { ...options, submissionPort: submission.port });
  const concierge = await startConcierge(parseConfig(config), { logger: logs.logger });
  return {
    concierge,
    port: concierge.listeners[0]!.address().port,
    spool,
    config,
    submission,
    logs,
    async close() {
      await concierge.close(0);
      await submission.close();
      if (!options.spool) await rm(spool, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** A unique Message-ID, so receivers can tell duplicates. */
export function messageId(tag = 'm'): string {
  return `<${tag}-${process.pid}-${++counter}@test.example>`;
}

/** Sends one message to the relay from `localAddress` with nodemailer; resolves its server response. */
export async function submit(port: number, options: { localAddress?: string; from: string; to: string[]; id?: string; text?: string; auth?: { user: string; pass: string }; name?: string }): Promise<string> {
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, localAddress: options.localAddress, name: options.name ?? 'client.test', auth: options.auth, connectionTimeout: 5_000 });
  try {
    const info = await transport.sendMail({ envelope: { from: options.from, to: options.to }, raw: `From: ${options.from}\r\nTo: ${options.to.join(', ')}\r\nSubject: relay test\r\nMessage-ID: ${options.id ?? messageId()}\r\n\r\n${options.text ?? 'Hello through the relay.'}\r\n` });
    return info.response;
  } finally {
    transport.close();
  }
}

/** Resolves with the next message the relay of `env` finishes (delivered and/or bounced, then removed). */
export function nextFinished(env: RelayEnv, filter: (m: QueuedMessage) => boolean = () => true): Promise<QueuedMessage> {
  return nextEvent(env, 'finished', filter);
}

/** Resolves with the next message the relay saves for a retry. */
export function nextDeferred(env: RelayEnv, filter: (m: QueuedMessage) => boolean = () => true): Promise<QueuedMessage> {
  return nextEvent(env, 'deferred', filter);
}

/** Resolves with the next message removed on request (`concierge queue delete`). */
export function nextDeleted(env: RelayEnv): Promise<QueuedMessage> {
  return nextEvent(env, 'deleted', () => true);
}

function nextEvent(env: RelayEnv, name: 'finished' | 'deferred' | 'deleted', filter: (m: QueuedMessage) => boolean): Promise<QueuedMessage> {
  const events = env.concierge.relay!.runner.events;
  return new Promise((resolve) => {
    const on = (m: QueuedMessage) => {
      if (!filter(m)) return;
      events.off(name, on);
      resolve(m);
    };
    events.on(name, on);
  });
}

/** Resolves once `n` messages matching `filter` have been finished. */
export function finishedCount(env: RelayEnv, n: number, filter: (m: QueuedMessage) => boolean = () => true): Promise<void> {
  const events = env.concierge.relay!.runner.events;
  let seen = 0;
  return new Promise((resolve) => {
    const on = (m: QueuedMessage) => {
      if (!filter(m) || ++seen < n) return;
      events.off('finished', on);
      resolve();
    };
    events.on('finished', on);
  });
}
