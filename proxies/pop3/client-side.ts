import type { LineChannel } from '../../src/line-channel.js';
import { parseLogin } from '../../src/login.js';
import { type DialogueOutcome, runDialogue } from '../command.js';
import type { LoginContext, LoginRequest } from '../types.js';
import { PRE_LOGIN_CAPABILITIES, TLS_REQUIRED } from './replies.js';
import { decodePlain } from './sasl-plain.js';

/**
 * The AUTHORIZATION state of RFC 1939 §4 as Concierge plays it: the client names itself with
 * USER + PASS, or AUTH PLAIN (RFC 5034), and Concierge keeps the credentials for the backend.
 * `userGiven` is AUTHORIZATION after a successful USER, the only state where PASS is valid.
 */
type State = 'authorization' | 'userGiven';

interface Dialogue {
  state: State;
  user?: string;
}

/** What a command leads to: stay in the dialogue, hand credentials over, or end it. */
type Outcome = DialogueOutcome<State>;

type Handler = (arg: string, client: LineChannel, ctx: LoginContext, d: Dialogue) => Promise<Outcome> | Outcome;

/** RFC 5034 §4: a SASL response line may exceed the 255-octet command limit. */
const MAX_SASL_LINE = 2048;

/** RFC 2595 §4: STLS is listed while the upgrade is possible; where TLS is required, no login method is listed before it. */
const capa: Handler = (_arg, client, ctx, d) => {
  const plaintextRefused = ctx.tls.required && !ctx.tls.active;
  const lines = PRE_LOGIN_CAPABILITIES.filter((c) => !plaintextRefused || (c !== 'USER' && !c.startsWith('SASL')));
  if (ctx.tls.offered) lines.push('STLS');
  client.write(`+OK Capability list follows\r\n${lines.join('\r\n')}\r\n.\r\n`);
  return { next: d.state };
};

/** RFC 2595 §4: after the handshake the session starts over in AUTHORIZATION (a USER given before is forgotten). */
const stls: Handler = async (_arg, client, ctx, d) => {
  if (!ctx.tls.offered) {
    ctx.reject(ctx.tls.active ? 'badSequence' : 'syntax', ctx.tls.active ? 'STLS inside TLS' : 'STLS not offered', ctx.tls.active ? undefined : '-ERR STLS not available\r\n');
    return { next: d.state };
  }
  client.write('+OK Begin TLS negotiation\r\n');
  await ctx.startTls();
  d.user = undefined;
  return { next: 'authorization' };
};

/** Where the listener requires TLS, a login before it is refused and counted. */
function refusedBeforeTls(ctx: LoginContext): boolean {
  if (!ctx.tls.required || ctx.tls.active) return false;
  ctx.reject('authFailed', 'plaintext login refused: TLS required', TLS_REQUIRED);
  return true;
}

const quit: Handler = (_arg, client) => {
  client.write('+OK Bye\r\n');
  return { quit: true };
};

const user: Handler = (arg, client, ctx, d) => {
  if (refusedBeforeTls(ctx)) return { next: 'authorization' };
  if (!parseLogin(arg, [])) {
    ctx.reject('syntax', 'USER without a valid name');
    return { next: 'authorization' };
  }
  d.user = arg;
  client.write('+OK\r\n');
  return { next: 'userGiven' };
};

const pass: Handler = (arg, _client, ctx, d) => {
  if (arg.length === 0 || d.user === undefined) {
    ctx.reject('syntax', 'PASS without a password');
    return { next: d.state };
  }
  return { login: { name: d.user, secret: arg, method: 'USER' } };
};

const auth: Handler = async (arg, client, ctx, d) => {
  if (refusedBeforeTls(ctx)) return { next: 'authorization' };
  const [mechanism = '', initial, extra] = arg.split(' ');
  if (mechanism.toUpperCase() !== 'PLAIN') {
    ctx.reject('syntax', 'AUTH mechanism not offered', '-ERR Unsupported authentication mechanism\r\n');
    return { next: d.state };
  }
  if (extra !== undefined) {
    ctx.reject('syntax', 'AUTH PLAIN with more than one argument');
    return { next: d.state };
  }
  let response = initial;
  if (response === undefined) {
    client.write('+ \r\n');
    const event = await client.next({ maxLineLength: MAX_SASL_LINE });
    if (event.kind !== 'line') {
      ctx.reject(event.kind === 'tooLong' ? 'lineTooLong' : 'syntax', 'bad SASL response line');
      return { next: 'authorization' };
    }
    response = event.line;
  }
  if (response === '*') {
    client.write('-ERR Authentication cancelled\r\n');
    return { next: 'authorization' };
  }
  // RFC 5034 §4: "=" is an empty initial response; PLAIN cannot be empty.
  const plain = response === '=' ? undefined : decodePlain(response);
  if (!plain || (plain.authzid !== '' && plain.authzid !== plain.authcid) || !parseLogin(plain.authcid, [])) {
    ctx.reject('syntax', 'malformed SASL PLAIN response');
    return { next: 'authorization' };
  }
  return { login: { name: plain.authcid, secret: plain.password, method: 'PLAIN' } };
};

/** RFC 1939 §4 commands valid before login, per state; everything else is badSequence. */
const commands = {
  authorization: { CAPA: capa, STLS: stls, USER: user, AUTH: auth, QUIT: quit },
  userGiven: { CAPA: capa, STLS: stls, USER: user, PASS: pass, AUTH: auth, QUIT: quit },
} satisfies Record<State, Record<string, Handler>>;

/** Runs AUTHORIZATION until credentials arrive or the client quits. */
export function readPop3Login(client: LineChannel, ctx: LoginContext): Promise<LoginRequest | undefined> {
  return runDialogue<State, Dialogue>(client, ctx, { state: 'authorization' }, commands, (verb) => {
    const known = verb in commands.userGiven || /^(STAT|LIST|RETR|DELE|NOOP|RSET|TOP|UIDL|APOP)$/.test(verb);
    ctx.reject(known ? 'badSequence' : 'syntax', known ? `${verb} before login` : 'unknown command');
  });
}
