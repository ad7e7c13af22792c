/**
 * The POP3 command table: which verbs each state accepts (RFC 1939 §3-§7, CAPA from
 * RFC 2449, AUTH from RFC 5034) and what each one does.
 */
import { isSafeUserName, type StoredMessage } from './maildir.js';
import { encodeWhole, readTop, sendMessage } from './message-transfer.js';
import type { Pop3Session, Pop3State } from './pop3-session.js';

type CommandHandler = (session: Pop3Session, args: string) => Promise<void> | void;
type CommandTable = { readonly [S in Exclude<Pop3State, 'update'>]: Readonly<Record<string, CommandHandler>> };

const authFailed = '-ERR [AUTH] Authentication failed.';
const capabilities = ['USER', 'SASL PLAIN', 'TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];

const commands = {
  // RFC 1939 §4 AUTHORIZATION state
  authorization: { USER: onUser, PASS: onPass, AUTH: onAuth, CAPA: onCapa, QUIT: onQuit },
  // RFC 1939 §5 TRANSACTION state; QUIT moves on to §6 UPDATE
  transaction: {
    STAT: onStat,
    LIST: onList,
    RETR: onRetr,
    DELE: onDele,
    NOOP: onNoop,
    RSET: onRset,
    TOP: onTop,
    UIDL: onUidl,
    CAPA: onCapa,
    QUIT: onQuit,
  },
} satisfies CommandTable;

const knownVerbs = new Set(Object.values(commands).flatMap((table) => Object.keys(table)));

/** The handler for `verb` in `state`, or undefined when that state does not accept it. */
export function findCommand(state: Exclude<Pop3State, 'update'>, verb: string): CommandHandler | undefined {
  const table: Readonly<Record<string, CommandHandler>> = commands[state];
  return Object.hasOwn(table, verb) ? table[verb] : undefined;
}

/** Whether some state accepts `verb`, to tell a bad sequence from an unknown command. */
export function isKnownVerb(verb: string): boolean {
  return knownVerbs.has(verb);
}

function onUser(session: Pop3Session, args: string): void {
  if (args === '') return session.reply('-ERR Missing user name.');
  // Unknown names are accepted here so that USER alone does not reveal who exists.
  session.pendingUser = args;
  session.reply('+OK Send your password.');
}

async function onPass(session: Pop3Session, args: string): Promise<void> {
  const user = session.pendingUser;
  if (user === null) return session.reply('-ERR Send USER first.');
  session.pendingUser = null;
  // The whole rest of the line is the password: RFC 1939 §7 lets it contain spaces.
  await logIn(session, user, args, 'USER');
}

/** RFC 5034: `AUTH PLAIN <initial-response>`, or `AUTH PLAIN` then a "+ " continuation. */
function onAuth(session: Pop3Session, args: string): Promise<void> | void {
  const [mechanism = '', initialResponse, ...extra] = args.split(' ').filter((word) => word !== '');
  if (mechanism === '') return session.replyLines('+OK Supported mechanisms follow.', ['PLAIN']);
  if (mechanism.toUpperCase() !== 'PLAIN') return session.reply('-ERR Unsupported authentication mechanism.');
  if (extra.length > 0) return session.reply('-ERR Too many arguments.');
  if (initialResponse !== undefined) return respondToPlain(session, initialResponse === '=' ? '' : initialResponse);
  session.continuation = (line) =>
    line === '*' ? session.reply('-ERR Authentication cancelled.') : respondToPlain(session, line);
  session.reply('+ ');
}

async function respondToPlain(session: Pop3Session, response: string): Promise<void> {
  const credentials = decodePlain(response);
  if (credentials === null) return session.reply('-ERR Malformed SASL PLAIN response.');
  // RFC 4616 §2: acting for someone else is not offered, so authzid is empty or the same user.
  if (credentials.authzid !== '' && credentials.authzid !== credentials.authcid) return session.reply(authFailed);
  await logIn(session, credentials.authcid, credentials.password, 'PLAIN');
}

function decodePlain(response: string): { authzid: string; authcid: string; password: string } | null {
  if (response.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(response)) return null;
  const fields = Buffer.from(response, 'base64').toString('latin1').split('\0');
  const [authzid, authcid, password] = fields;
  if (fields.length !== 3 || authzid === undefined || authcid === undefined || password === undefined) return null;
  if (authcid === '') return null;
  return { authzid, authcid, password };
}

async function logIn(session: Pop3Session, user: string, password: string, method: 'USER' | 'PLAIN'): Promise<void> {
  const { store } = session.services;
  const passwords = await store.readPasswords();
  // One reply for an unknown user and a wrong password.
  if (!isSafeUserName(user) || passwords.get(user) !== password) return session.reply(authFailed);
  if (!session.lockMaildrop(user)) return session.reply('-ERR [IN-USE] Mailbox is locked by another session.');
  let messages: StoredMessage[];
  try {
    messages = await store.listMessages(user);
  } catch (error) {
    session.unlockMaildrop();
    throw error;
  }
  session.maildrop = { user, messages, deleted: new Set() };
  session.state = 'transaction';
  session.record.user = user;
  session.record.authenticated = true;
  session.record.method = method;
  session.services.onLogin(session.record);
  session.reply(`+OK Mailbox open, ${messages.length} messages (${totalOctets(messages)} octets).`);
}

function onCapa(session: Pop3Session): void {
  session.replyLines('+OK Capability list follows.', capabilities);
}

async function onQuit(session: Pop3Session): Promise<void> {
  const maildrop = session.maildrop;
  if (session.state === 'transaction' && maildrop !== null) {
    session.state = 'update';
    if (!session.services.readOnly && maildrop.deleted.size > 0) {
      const doomed = maildrop.messages.filter((_, index) => maildrop.deleted.has(index));
      const failures = await session.services.store.removeMessages(doomed);
      if (failures > 0) {
        session.reply('-ERR [SYS/TEMP] Some deleted messages were not removed.');
        return session.end();
      }
    }
  }
  session.reply('+OK Bye.');
  session.end();
}

function onStat(session: Pop3Session): void {
  const live = liveMessages(session);
  session.reply(`+OK ${live.length} ${totalOctets(live.map(({ message }) => message))}`);
}

function onList(session: Pop3Session, args: string): void {
  listEach(session, args, (message) => String(message.octets));
}

function onUidl(session: Pop3Session, args: string): void {
  listEach(session, args, (message) => message.uid);
}

/** LIST and UIDL: one scan line for the message given, or one line each for all of them. */
function listEach(session: Pop3Session, args: string, describe: (message: StoredMessage) => string): void {
  if (args.trim() !== '') {
    const found = findMessage(session, args);
    if (found === null) return session.reply('-ERR No such message.');
    return session.reply(`+OK ${found.number} ${describe(found.message)}`);
  }
  const live = liveMessages(session);
  session.replyLines(
    `+OK ${live.length} messages.`,
    live.map(({ number, message }) => `${number} ${describe(message)}`),
  );
}

async function onRetr(session: Pop3Session, args: string): Promise<void> {
  const found = findMessage(session, args);
  if (found === null) return session.reply('-ERR No such message.');
  await sendMessage(session.socket, found.message.path, `+OK ${found.message.octets} octets`, session.signal);
}

async function onTop(session: Pop3Session, args: string): Promise<void> {
  const [numberArg = '', linesArg = ''] = args.trim().split(/ +/);
  const found = findMessage(session, numberArg);
  if (found === null) return session.reply('-ERR No such message.');
  if (!/^\d{1,9}$/.test(linesArg)) return session.reply('-ERR Give a message number and a line count.');
  const top = await readTop(found.message.path, Number(linesArg));
  if (session.socket.writable) session.socket.write(Buffer.concat([Buffer.from('+OK\r\n'), encodeWhole(top)]));
}

function onDele(session: Pop3Session, args: string): void {
  const found = findMessage(session, args);
  if (found === null) return session.reply('-ERR No such message.');
  session.maildrop?.deleted.add(found.number - 1);
  session.reply(`+OK Message ${found.number} deleted.`);
}

function onRset(session: Pop3Session): void {
  session.maildrop?.deleted.clear();
  const live = liveMessages(session);
  const octets = totalOctets(live.map(({ message }) => message));
  session.reply(`+OK Maildrop has ${live.length} messages (${octets} octets).`);
}

function onNoop(session: Pop3Session): void {
  session.reply('+OK');
}

/** A message by its 1-based number, unless out of range, malformed or marked deleted. */
function findMessage(session: Pop3Session, arg: string): { number: number; message: StoredMessage } | null {
  const text = arg.trim();
  if (!/^[1-9]\d{0,8}$/.test(text)) return null;
  const number = Number(text);
  const message = session.maildrop?.messages[number - 1];
  if (message === undefined || session.maildrop?.deleted.has(number - 1)) return null;
  return { number, message };
}

function liveMessages(session: Pop3Session): { number: number; message: StoredMessage }[] {
  const maildrop = session.maildrop;
  if (maildrop === null) return [];
  return maildrop.messages.flatMap((message, index) =>
    maildrop.deleted.has(index) ? [] : [{ number: index + 1, message }],
  );
}

function totalOctets(messages: readonly StoredMessage[]): number {
  return messages.reduce((sum, message) => sum + message.octets, 0);
}
