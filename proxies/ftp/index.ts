import type { ProtocolModule } from '../types.js';
import { replayFtpLogin } from './backend-side.js';
import { readFtpLogin } from './client-side.js';
import { relayFtpControl } from './control.js';
import { DEFAULT_BANNER, ftpReplies } from './replies.js';

/** FTP (RFC 959, RFC 2428 EPSV / EPRT, RFC 2389 FEAT) as a Concierge protocol module. */
export const ftp: ProtocolModule = {
  name: 'ftp',
  // RFC 959 sets no limit; this leaves room for a long path (vsftpd allows 4096).
  maxLineLength: 2048,
  greeting: (banner) => `220 ${banner ?? DEFAULT_BANNER}\r\n`,
  readLogin: readFtpLogin,
  replayLogin: replayFtpLogin,
  reply: (kind) => ftpReplies[kind],
  // RFC 959 §4.2: 421 means the server is closing the control connection.
  closesAfterTempFailure: true,
  afterLogin: relayFtpControl,
};
