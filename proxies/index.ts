import type { Protocol } from '../src/tenants.js';
import { ftp } from './ftp/index.js';
import { pop3 } from './pop3/index.js';
import { smtp } from './smtp/index.js';
import type { ProtocolModule } from './types.js';

/** Protocol name → module. A listener's protocol must be one of these. */
export const protocolModules: Partial<Record<Protocol, ProtocolModule>> = { pop3, ftp, smtp };
