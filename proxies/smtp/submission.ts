import type { LineChannel } from '../../src/line-channel.js';
import { parseLogin } from '../../src/login.js';
import type { ClientTls, LoginContext, LoginRequest } from '../types.js';
import { nextCommand } from '../command.js';
import { isHeloName } from './commands.js';
import { decodePlain } from '../pop3/sasl-plain.js';
import { replies, type SmtpSettings } from './replies.js';

/**
 * Submission before AUTH (RFC 6409, RFC 4954 §4): `fresh` until EHLO / HELO, then `greeted`,
 * where AUTH PLAIN / AUTH LOGIN hand the credentials over. Mail commands need AUTH first (530).
 */
type State = 'fresh' | 'greeted';

interface Dialogue {
  state: State;
  helo?: string;
}

type Outcome = { next: State } | { login: LoginRequest } | { quit: true };
type Handler = (arg: string, client: LineChannel, ctx: LoginContext, d: Dialogue, s: SmtpSettings) => Promise<Outcome> | Outcome;

/** RFC 4954 §4: a SASL response line may be up to 12288 octets. */
const MAX_SASL_LINE = 12_288;
const HTTP_REQUEST = /^[A-Z]{3,7} \S+ HTTP\/\d(?:\.\d)?$/i;

/**
 * The EHLO reply of a listener (RFC 5321 §4.1.1.1); `auth` adds the AUTH keyword, except where
 * TLS is required and not yet on (RFC 3207 §4); STARTTLS is listed while the upgrade is possible.
 */
export function ehloReply(s: SmtpSettings, auth: boolean, tls: ClientTls): string {
  const authNow = auth && !(tls.required && !tls.active);
  // Four variants per listener at most, and every session asks: built once each.
  const key = `${authNow ? 'A' : ''}${tls.offered ? 'S' : ''}`;
  let built = ehloReplies.get(s);
  if (!built) ehloReplies.set(s, (built = new Map()));
  let reply = built.get(key);
  if (reply === undefined) built.set(key, (reply = buildEhloReply(s, authNow, tls.offered)));
  return reply;
}

const ehloReplies = new WeakMap<SmtpSettings, Map<string, string>>();

function buildEhloReply(s: SmtpSettings, authNow: boolean, starttls: boolean): string {
  const lines = [s.hostname, 'PIPELINING', `SIZE ${s.maxMessageSize}`, '8BITMIME', ...(s.smtputf8 ? ['SMTPUTF8'] : []), 'ENHANCEDSTATUSCODES', ...(s.dsn ? ['DSN'] : []), ...(starttls ? ['STARTTLS'] : []), ...(authNow ? ['AUTH PLAIN LOGIN'] : [])];
  return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
}

/** A line that is an HTTP request: another protocol talking to this port (cross-protocol defence). */
export function isHttpRequest(line: string): boolean {
  return HTTP_REQUEST.test(line);
}

const hello =
  (verb: 'EHLO' | 'HELO'): Handler =>
  (arg, client, ctx, d, s) => {
    if (!isHeloName(arg.trim())) {
      ctx.reject('syntax', `${verb} without a valid name`, replies.badHelo);
      return { next: d.state };
    }
    d.helo = arg.trim();
    client.write(verb === 'EHLO' ? ehloReply(s, true, ctx.tls) : `250 ${s.hostname}\r\n`);
    return { next: 'greeted' };
  };

const simple =
  (text: string): Handler =>
  (_arg, client, _ctx, d) => {
    client.write(text);
    return { next: d.state };
  };

const quit: Handler = (_arg, client) => {
  client.write(replies.bye);
  return { quit: true };
};

const needAuth: Handler = (_arg, _client, ctx, d) => {
  ctx.reject('badSequence', 'mail command before AUTH', replies.needAuth);
  return { next: d.state };
};

/** Reads one SASL response line; undefined when cancelled or unusable (already answered). */
async function saslLine(client: LineChannel, ctx: LoginContext, prompt: string): Promise<string | undefined> {
  client.write(`334 ${prompt}\r\n`);
  const event = await client.next({ maxLineLength: MAX_SASL_LINE });
  if (event.kind !== 'line') {
    ctx.reject(event.kind === 'tooLong' ? 'lineTooLong' : 'syntax', 'bad SASL response line');
    return undefined;
  }
  if (event.line === '*') {
    client.write(replies.cancelled);
    return undefined;
  }
  return event.line;
}

function decodeBase64(text: string): string | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64').toString('latin1');
}

/** RFC 3207 §4.2: after the handshake the session starts over; the EHLO given in plaintext is forgotten. */
const startTls: Handler = async (arg, client, ctx, d) => {
  if (!ctx.tls.offered) {
    ctx.reject('badSequence', 'STARTTLS not offered', ctx.tls.active ? replies.tlsActive : replies.noTls);
    return { next: d.state };
  }
  if (arg.trim() !== '') {
    ctx.reject('syntax', 'STARTTLS with an argument', replies.syntaxArgs);
    return { next: d.state };
  }
  client.write(replies.startTls);
  await ctx.startTls();
  d.helo = undefined;
  return { next: 'fresh' };
};

const auth: Handler = async (arg, client, ctx, d) => {
  if (ctx.tls.required && !ctx.tls.active) {
    ctx.reject('badSequence', 'AUTH before STARTTLS', replies.needTls);
    return { next: d.state };
  }
  const [mechanism = '', initial, extra] = arg.split(' ');
  const mech = mechanism.toUpperCase();
  if (extra !== undefined || (mech !== 'PLAIN' && mech !== 'LOGIN')) {
    ctx.reject('syntax', 'AUTH mechanism not offered', replies.mechanism);
    return { next: d.state };
  }
  const helo = d.helo;
  if (mech === 'PLAIN') {
    const response = initial ?? (await saslLine(client, ctx, ''));
    if (response === undefined) return { next: d.state };
    const plain = response === '=' ? undefined : decodePlain(response);
    if (!plain || (plain.authzid !== '' && plain.authzid !== plain.authcid) || !parseLogin(plain.authcid, [])) {
      ctx.reject('syntax', 'malformed SASL PLAIN response', replies.badSasl);
      return { next: d.state };
    }
    return { login: { name: plain.authcid, secret: plain.password, method: 'PLAIN', helo } };
  }
  // AUTH LOGIN (draft-murchison-sasl-login): "Username:" and "Password:" prompts, base64 both ways.
  const userText = initial ?? (await saslLine(client, ctx, 'VXNlcm5hbWU6'));
  if (userText === undefined) return { next: d.state };
  const user = decodeBase64(userText);
  if (user === undefined || !parseLogin(user, [])) {
    ctx.reject('syntax', 'malformed AUTH LOGIN user name', replies.badSasl);
    return { next: d.state };
  }
  const passText = await saslLine(client, ctx, 'UGFzc3dvcmQ6');
  if (passText === undefined) return { next: d.state };
  const password = decodeBase64(passText);
  if (!password) {
    ctx.reject('syntax', 'malformed AUTH LOGIN password', replies.badSasl);
    return { next: d.state };
  }
  return { login: { name: user, secret: password, method: 'LOGIN', helo } };
};

const anyState = { EHLO: hello('EHLO'), HELO: hello('HELO'), STARTTLS: startTls, NOOP: simple(replies.ok), RSET: simple(replies.resetOk), HELP: simple(replies.help), QUIT: quit, MAIL: needAuth, RCPT: needAuth, DATA: needAuth, VRFY: needAuth };

/** RFC 4954 §4: AUTH only after EHLO; everything that moves mail only after AUTH. */
const commands = {
  fresh: { ...anyState },
  greeted: { ...anyState, AUTH: auth },
} satisfies Record<State, Record<string, Handler>>;

/** Each client's dialogue, kept across the core's login attempts. */
const dialogues = new WeakMap<LineChannel, Dialogue>();

/** Runs the submission dialogue until AUTH offers credentials or the client quits. */
export function readSubmissionLogin(s: SmtpSettings) {
  return async (client: LineChannel, ctx: LoginContext): Promise<LoginRequest | undefined> => {
    // The core asks again after a failed AUTH: the EHLO given before still holds (RFC 4954 §4).
    let d = dialogues.get(client);
    if (!d) dialogues.set(client, (d = { state: 'fresh' }));
    for (;;) {
      const { line, verb, arg } = await nextCommand(client, ctx);
      if (isHttpRequest(line)) {
        client.write(`421 4.7.0 ${s.hostname} This is an SMTP server, closing transmission channel\r\n`);
        return undefined;
      }
      const table: Record<string, Handler | undefined> = commands[d.state];
      const handler = table[verb];
      if (!handler) {
        if (verb === 'AUTH') ctx.reject('badSequence', 'AUTH before EHLO', replies.needHelo);
        else ctx.reject('syntax', 'unknown command');
        continue;
      }
      const outcome = await handler(arg, client, ctx, d, s);
      if ('login' in outcome) return outcome.login;
      if ('quit' in outcome) return undefined;
      d.state = outcome.next;
    }
  };
}
