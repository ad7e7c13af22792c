import type { LineChannel } from '../../src/line-channel.js';
import { parseLogin } from '../../src/login.js';
import { type DialogueOutcome, runDialogue } from '../command.js';
import type { LoginContext, LoginRequest } from '../types.js';
import { answerPbsz, answerProt, protectionOf } from './protection.js';
import { PRE_LOGIN_FEATURES, TLS_FEATURES, TLS_REQUIRED } from './replies.js';

/**
 * The login sequence of RFC 959 §5.4 / §6 as Concierge plays it: USER, then PASS, whose
 * credentials go to the backend. `userGiven` is the state after a 331, the only one where PASS is valid.
 */
type State = 'authorization' | 'userGiven';

interface Dialogue {
  state: State;
  user?: string;
}

type Outcome = DialogueOutcome<State>;

type Handler = (arg: string, client: LineChannel, ctx: LoginContext, d: Dialogue) => Outcome | Promise<Outcome>;

const stay = (d: Dialogue): Outcome => ({ next: d.state });

const user: Handler = (arg, client, ctx, d) => {
  if (ctx.tls.required && !ctx.tls.active) {
    // RFC 959 gives USER 530 for "not logged in"; 534 belongs to AUTH / PROT (RFC 2228) and clients do not expect it here.
    ctx.reject('authFailed', 'plaintext login refused: TLS required', TLS_REQUIRED);
    return { next: 'authorization' };
  }
  // parseLogin refuses control characters, spaces and empty parts: nothing can be smuggled into the backend's USER line.
  if (!parseLogin(arg, [])) {
    ctx.reject('syntax', 'USER without a valid name', '501 Invalid user name.\r\n');
    return { next: 'authorization' };
  }
  d.user = arg;
  client.write('331 Password required.\r\n');
  return { next: 'userGiven' };
};

const pass: Handler = (arg, _client, ctx, d) => {
  if (d.user === undefined) {
    ctx.reject('badSequence', 'PASS before USER', '503 Login with USER first.\r\n');
    return stay(d);
  }
  return { login: { name: d.user, secret: arg, method: 'USER' } };
};

/** RFC 4217 §6: a listener with TLS lists AUTH TLS, PBSZ and PROT. */
const feat: Handler = (_arg, client, ctx, d) => {
  const features = ctx.tls.offered || ctx.tls.active ? [...TLS_FEATURES, ...PRE_LOGIN_FEATURES].sort() : PRE_LOGIN_FEATURES;
  client.write(`211-Features:\r\n${features.map((f) => ` ${f}\r\n`).join('')}211 End\r\n`);
  return stay(d);
};

const syst: Handler = (_arg, client, _ctx, d) => {
  client.write('215 UNIX Type: L8\r\n');
  return stay(d);
};

const noop: Handler = (_arg, client, _ctx, d) => {
  client.write('200 NOOP ok.\r\n');
  return stay(d);
};

/** RFC 2640 §3.1: OPTS UTF8 ON. Bytes pass through untouched, so UTF-8 is always on. */
const opts: Handler = (arg, client, _ctx, d) => {
  client.write(/^UTF-?8( ON)?$/i.test(arg.trim()) ? '200 Always in UTF8 mode.\r\n' : '501 Option not understood.\r\n');
  return stay(d);
};

/**
 * RFC 4217 §4: AUTH TLS (and the older AUTH SSL, its synonym here) → 234, then the handshake.
 * Anything the client sent after the AUTH line is dropped by the core; the login starts over,
 * a USER given in the clear forgotten.
 */
const auth: Handler = async (arg, client, ctx, d) => {
  const mechanism = arg.trim().toUpperCase();
  if (!ctx.tls.offered) {
    if (ctx.tls.active) ctx.reject('badSequence', 'AUTH inside TLS', '503 TLS is already active.\r\n');
    else ctx.reject('syntax', 'AUTH (no TLS on this listener)', '502 TLS is not available on this port.\r\n');
    return stay(d);
  }
  if (mechanism !== 'TLS' && mechanism !== 'SSL' && mechanism !== 'TLS-C') {
    ctx.reject('syntax', 'AUTH with an unknown mechanism', '504 AUTH TLS is the mechanism offered.\r\n');
    return stay(d);
  }
  client.write('234 Proceed with TLS negotiation.\r\n');
  await ctx.startTls();
  d.user = undefined;
  return { next: 'authorization' };
};

const pbsz: Handler = (arg, client, ctx, d) => {
  const reply = answerPbsz(arg, ctx.tls, protectionOf(ctx.tls));
  if (reply.error) ctx.reject('syntax', reply.error, reply.text);
  else client.write(reply.text);
  return stay(d);
};

const prot: Handler = (arg, client, ctx, d) => {
  const state = protectionOf(ctx.tls);
  const reply = answerProt(arg, ctx.tls, state);
  if (reply.level) state.prot = reply.level;
  if (reply.error) ctx.reject('syntax', reply.error, reply.text);
  else client.write(reply.text);
  return stay(d);
};

const quit: Handler = (_arg, client) => {
  client.write('221 Goodbye.\r\n');
  return { quit: true };
};

/** Commands valid before login, per state; anything else needs a login (530). */
const commands = {
  authorization: { USER: user, PASS: pass, FEAT: feat, SYST: syst, NOOP: noop, OPTS: opts, AUTH: auth, PBSZ: pbsz, PROT: prot, QUIT: quit },
  userGiven: { USER: user, PASS: pass, FEAT: feat, SYST: syst, NOOP: noop, OPTS: opts, AUTH: auth, PBSZ: pbsz, PROT: prot, QUIT: quit },
} satisfies Record<State, Record<string, Handler>>;

/** Runs the pre-login dialogue until credentials arrive or the client quits. */
export function readFtpLogin(client: LineChannel, ctx: LoginContext): Promise<LoginRequest | undefined> {
  return runDialogue<State, Dialogue>(client, ctx, { state: 'authorization' }, commands, (verb) =>
    ctx.reject('badSequence', `${/^[A-Z]{3,4}$/.test(verb) ? verb : 'unknown command'} before login`),
  );
}
