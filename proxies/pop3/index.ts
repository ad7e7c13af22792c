import type { ProtocolModule } from '../types.js';
import { replayPop3Login } from './backend-side.js';
import { readPop3Login } from './client-side.js';
import { DEFAULT_BANNER, pop3Replies } from './replies.js';

/** POP3 (RFC 1939, RFC 2449 CAPA, RFC 5034 SASL) as a Concierge protocol module. */
export const pop3: ProtocolModule = {
  name: 'pop3',
  // RFC 2449 §4: a command line is at most 255 octets, CRLF included.
  maxLineLength: 255,
  greeting: (banner) => `+OK ${banner ?? DEFAULT_BANNER}\r\n`,
  readLogin: readPop3Login,
  replayLogin: replayPop3Login,
  reply: (kind) => pop3Replies[kind],
};
