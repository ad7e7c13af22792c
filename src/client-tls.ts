import type { Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { ClientTls } from '../proxies/types.js';
import type { SessionLog } from './log.js';
import { acceptTls, type ListenerTls } from './tls.js';

/**
 * One session's client-side TLS: the listener's settings, then what the handshake settled (the
 * context, for FTPS data connections to resume; the tenant SNI named). Modules read it as
 * ClientTls, live: it changes when the client upgrades.
 */
export class ClientTlsEnd implements ClientTls {
  /** Set by the handshake: the context the client's session lives in. */
  private context: SecureContext | undefined;
  /** The tenant the client's TLS server name (SNI) named: the default tenant of a bare login. */
  sniTenant: string | undefined;

  constructor(private readonly view: ListenerTls | undefined) {}

  /** TLS from the first byte: the handshake comes before the greeting. */
  get implicit(): boolean {
    return this.view?.mode === 'implicit';
  }

  get offered(): boolean {
    return this.view?.mode === 'starttls' && this.context === undefined;
  }

  get active(): boolean {
    return this.context !== undefined;
  }

  get required(): boolean {
    return this.view?.requireTls === true;
  }

  get requireProtP(): boolean {
    return this.view?.requireProtP === true;
  }

  /** What FTPS data connections need to take the control connection's TLS session (undefined before TLS). */
  get forData(): { readonly view: ListenerTls; readonly context: SecureContext } | undefined {
    return this.view && this.context ? { view: this.view, context: this.context } : undefined;
  }

  /**
   * Runs the server side of the handshake on `raw` and records its outcome in the session's log
   * fields. Rejects with the handshake's error (the caller logs and ends the session).
   */
  async accept(raw: Socket, timeoutMs: number, log: SessionLog): Promise<TLSSocket> {
    const accepted = await acceptTls(raw, this.view!, timeoutMs);
    this.context = accepted.context;
    this.sniTenant = accepted.sniTenant;
    const { socket } = accepted;
    log.with({ tls: socket.getProtocol() ?? 'tls', ...(accepted.sniTenant ? { sni: accepted.sniTenant } : {}) });
    if (log.isDebugEnabled()) log.debug('tls established', { cipher: socket.getCipher().name, servername: (socket as unknown as { servername?: string }).servername });
    return socket;
  }
}
