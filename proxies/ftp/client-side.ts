import type { LineChannel } from '../../src/line-channel.js';
import { parseLogin } from '../../src/login.js';
import { type DialogueOutcome, runDialogue } from '../command.js';
import type { LoginContext, LoginRequest } from '../types.js';
import { PRE_LOGIN_FEATURES } from './replies.js';

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

type Handler = (arg: string, client: LineChannel, ctx: LoginContext, d: Dialogue) => Outcome;

const stay = (d: Dialogue): Outcome => ({ next: d.state });

const user: Handler = (arg, client, ctx, d) => {
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

const feat: Handler = (_arg, client, _ctx, d) => {
  client.write(`211-Features:\r\n${PRE_LOGIN_FEATURES.map((f) => ` ${f}\r\n`).join('')}211 End\r\n`);
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

const auth: Handler = (_arg, _client, ctx, d) => {
  ctx.reject('syntax', 'AUTH (no TLS on this listener)', '502 TLS is not available on this port.\r\n');
  return stay(d);
};

const quit: Handler = (_arg, client) => {
  client.write('221 Goodbye.\r\n');
  return { quit: true };
};

/** Commands valid before login, per state; anything else needs a login (530). */
const commands = {
  authorization: { USER: user, PASS: pass, FEAT: feat, SYST: syst, NOOP: noop, OPTS: opts, AUTH: auth, QUIT: quit },
  userGiven: { USER: user, PASS: pass, FEAT: feat, SYST: syst, NOOP: noop, OPTS: opts, AUTH: auth, QUIT: quit },
} satisfies Record<State, Record<string, Handler>>;

/** Runs the pre-login dialogue until credentials arrive or the client quits. */
export function readFtpLogin(client: LineChannel, ctx: LoginContext): Promise<LoginRequest | undefined> {
  return runDialogue<State, Dialogue>(client, ctx, { state: 'authorization' }, commands, (verb) =>
    ctx.reject('badSequence', `${/^[A-Z]{3,4}$/.test(verb) ? verb : 'unknown command'} before login`),
  );
}
