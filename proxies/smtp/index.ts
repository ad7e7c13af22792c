import os from 'node:os';
import { DEFAULT_MAX_MESSAGE_SIZE, type ListenerConfig } from '../../src/config.js';
import type { ProtocolModule } from '../types.js';
import { introduce, replayAuth } from './backend-side.js';
import { DSN_LINE_EXTRA } from './dsn.js';
import { serveMx } from './mx.js';
import { DEFAULT_MAX_LINE, type SmtpSettings, smtpReplies } from './replies.js';
import { readSubmissionLogin } from './submission.js';

/** An SMTP module for one listener's settings: mx (route per transaction) or submission (route per AUTH). */
export function createSmtpModule(s: SmtpSettings): ProtocolModule {
  const table = smtpReplies(s);
  const base = {
    name: 'smtp',
    // RFC 5321 §4.5.3.1.4: a command line is at most 512 octets, CRLF included; RFC 3461 §4 adds
    // 500 to RCPT (NOTIFY, ORCPT) and 110 to MAIL (RET, ENVID) where DSN is offered.
    maxLineLength: s.dsn ? DEFAULT_MAX_LINE + DSN_LINE_EXTRA : DEFAULT_MAX_LINE,
    greeting: () => `220 ${s.hostname} ESMTP\r\n`,
    reply: (kind) => table[kind],
    forListener,
  } satisfies Partial<ProtocolModule>;
  if (s.mode === 'relay') throw new Error('an smtp listener in mode "relay" is served by the relay (relay/intake.ts)');
  if (s.mode === 'mx') {
    return {
      ...base,
      readLogin: () => Promise.reject(new Error('the mx module serves whole sessions')),
      replayLogin: () => Promise.reject(new Error('the mx module serves whole sessions')),
      serve: serveMx(s),
    };
  }
  return {
    ...base,
    readLogin: readSubmissionLogin(s),
    async replayLogin(backend, login, backendUser, ctx, target) {
      const timeoutMs = ctx.limits.backendReplyTimeoutMs;
      const extensions = await introduce(backend, target, { peer: ctx.peer, helo: login.helo, proto: 'ESMTP' }, s.hostname, timeoutMs);
      return replayAuth(backend, login, backendUser, extensions, timeoutMs);
    },
  };
}

/** Settings of a listener, with the defaults filled in. */
export function smtpSettings(listener: ListenerConfig): SmtpSettings {
  return {
    mode: listener.mode ?? 'mx',
    hostname: listener.hostname ?? os.hostname(),
    maxMessageSize: listener.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    greetingDelayMs: listener.greetingDelayMs ?? 0,
    smtputf8: listener.smtputf8 ?? false,
    dsn: listener.dsn ?? false,
  };
}

function forListener(listener: ListenerConfig): ProtocolModule {
  return createSmtpModule(smtpSettings(listener));
}

/** SMTP (RFC 5321, RFC 6409, RFC 4954) before a listener configures it: mx with the host's name. */
export const smtp: ProtocolModule = forListener({ protocol: 'smtp', address: '0.0.0.0', port: 25 });
