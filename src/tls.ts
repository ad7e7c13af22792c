import { readFile } from 'node:fs/promises';
import { isIP, type Socket } from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Backend, CertificateFiles, Config, ListenerConfig } from './config.js';
import { ConfigError } from './config.js';
import { BackendError } from './errors.js';
import type { LineChannel } from './line-channel.js';
import type { Logger } from './log.js';

/**
 * Node's secure defaults, said once: TLS 1.2 and 1.3 only (1.0 / 1.1 off), Node's default
 * cipher list, no renegotiation worth speaking of (1.3 has none; Node limits it on 1.2).
 */
const MIN_VERSION = 'TLSv1.2' as const;

/** A listener's client-side TLS, as its sessions see it. */
export interface ListenerTls {
  readonly mode: 'starttls' | 'implicit';
  readonly requireTls: boolean;
  readonly requireProtP: boolean;
  /** The context for a server name (SNI): the tenant's certificate when a tenant owns the name, else the listener's. */
  contextFor(servername: string | undefined): { readonly context: tls.SecureContext; readonly tenant?: string };
}

/** What a backend dial needs to speak TLS to one backend. */
export interface BackendTlsOptions {
  readonly mode: 'starttls' | 'implicit';
  readonly options: tls.ConnectionOptions;
}

interface Problem {
  readonly where: string;
  readonly message: string;
}

/**
 * Every certificate, key and CA file of a config, read and turned into contexts once per load
 * (start and each reload), so a handshake never touches the disk and a bad file is reported
 * with its JSON path before it can fail a client.
 */
export class TlsStore {
  /** By the listener's settings without its certificate (listenerKey): a reload finds a kept listener's. */
  private readonly listeners = new Map<string, ListenerTls>();
  /** Tenant names (domains and aliases) → their context. */
  private readonly byName = new Map<string, { context: tls.SecureContext; tenant: string }>();
  private readonly backends = new WeakMap<Backend, BackendTlsOptions>();
  /** forListener's answers by config object: it is asked at every session, and listenerKey costs a JSON.stringify. */
  private readonly byListener = new WeakMap<ListenerConfig, { view: ListenerTls | undefined }>();

  private constructor() {}

  /** Reads every TLS file the config names. Throws ConfigError listing every unreadable or mismatched file. */
  static async load(config: Config, logger?: Logger): Promise<TlsStore> {
    const store = new TlsStore();
    const problems: Problem[] = [];
    const contexts = new Map<string, Promise<tls.SecureContext | undefined>>();
    const contextOf = (files: CertificateFiles, where: string) => {
      const key = `${files.cert}\0${files.key}`;
      let pending = contexts.get(key);
      if (!pending) {
        pending = serverContext(files, where, problems, logger);
        contexts.set(key, pending);
      }
      return pending;
    };

    await Promise.all([
      ...config.listeners.map(async (l, i) => {
        const mode = l.tls ?? 'none';
        if (mode === 'none' || !l.certificate) return;
        const context = await contextOf(l.certificate, `listeners[${i}].certificate`);
        if (context) store.listeners.set(listenerKey(l), store.listenerView(l, mode, context));
      }),
      ...config.tenants.map(async (t, i) => {
        if (!t.certificate) return;
        const context = await contextOf(t.certificate, `tenants[${i}].certificate`);
        if (!context) return;
        for (const name of [t.domain, ...t.aliases]) store.byName.set(name, { context, tenant: t.domain });
      }),
      ...config.tenants.flatMap((t, i) =>
        Object.entries(t.backends).flatMap(([protocol, list]) =>
          list.map(async (b, j) => {
            const mode = b.tls ?? 'none';
            if (mode === 'none') return;
            const where = `tenants[${i}].backends.${protocol}[${j}]`;
            let ca: Buffer | undefined;
            if (b.ca) ca = await readOrReport(b.ca, `${where}.ca`, problems);
            if (b.insecureSkipVerify) logger?.warn('backend certificate not verified (insecureSkipVerify)', { backend: `${b.host}:${b.port}`, tenant: t.domain });
            const servername = b.servername ?? (isIP(b.host) ? undefined : b.host);
            store.backends.set(b, {
              mode,
              options: {
                // One context per backend and load: given `ca` instead, tls.connect would build a
                // context (parse the PEM, fill a certificate store) on every dial, about 15% of
                // a TLS-to-TLS POP3 session's CPU in the bench profile (bench/RESULTS.md).
                secureContext: tls.createSecureContext({ minVersion: MIN_VERSION, ...(ca ? { ca } : {}) }),
                rejectUnauthorized: !b.insecureSkipVerify,
                ...(servername ? { servername } : {}),
                // With an IP host and a configured name, the certificate is checked against the name.
                checkServerIdentity: (host, cert) => tls.checkServerIdentity(servername ?? host, cert),
              },
            });
          }),
        ),
      ),
    ]);
    if (problems.length > 0) throw new ConfigError(problems.map((p) => `${p.where}: ${p.message}`));
    return store;
  }

  /** The TLS of a listener with these settings, or undefined for a plaintext listener. */
  forListener(listener: ListenerConfig): ListenerTls | undefined {
    let known = this.byListener.get(listener);
    if (!known) this.byListener.set(listener, (known = { view: this.listeners.get(listenerKey(listener)) }));
    return known.view;
  }

  /** How to speak TLS to `backend`, or undefined for a plaintext one. */
  forBackend(backend: Backend): BackendTlsOptions | undefined {
    return this.backends.get(backend);
  }

  /** The tenant certificate for a server name: exact name, then each parent domain (mail.a.example → a.example). */
  private tenantContext(servername: string): { context: tls.SecureContext; tenant: string } | undefined {
    let name = servername.toLowerCase().replace(/\.$/, '');
    for (;;) {
      const hit = this.byName.get(name);
      if (hit) return hit;
      const dot = name.indexOf('.');
      if (dot < 0) return undefined;
      name = name.slice(dot + 1);
    }
  }

  private listenerView(l: ListenerConfig, mode: 'starttls' | 'implicit', context: tls.SecureContext): ListenerTls {
    return {
      mode,
      requireTls: mode === 'implicit' || l.requireTls === true,
      requireProtP: l.requireProtP === true,
      contextFor: (servername) => (servername && this.tenantContext(servername)) || { context },
    };
  }
}

async function readOrReport(file: string, where: string, problems: Problem[]): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    problems.push({ where, message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return undefined;
  }
}

/** A server context from a cert + key pair; a mismatched pair or bad PEM is a config problem, an expired certificate a warning. */
async function serverContext(files: CertificateFiles, where: string, problems: Problem[], logger?: Logger): Promise<tls.SecureContext | undefined> {
  const [cert, key] = await Promise.all([readOrReport(files.cert, `${where}.cert`, problems), readOrReport(files.key, `${where}.key`, problems)]);
  if (!cert || !key) return undefined;
  try {
    const context = tls.createSecureContext({ cert, key, minVersion: MIN_VERSION });
    const leaf = new X509Certificate(cert);
    const now = Date.now();
    if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) {
      // Served anyway (an operator may be mid-renewal), but clients will refuse it: say so loudly.
      logger?.warn('certificate not valid now', { where, cert: files.cert, validFrom: leaf.validFrom, validTo: leaf.validTo });
    }
    return context;
  } catch (err) {
    problems.push({ where, message: `${files.cert} / ${files.key}: ${(err as Error).message}` });
    return undefined;
  }
}

/**
 * A listener's identity across reloads: its settings without the certificate, which a reload
 * may change under a listener that stays open.
 */
export function listenerKey(listener: ListenerConfig): string {
  const { certificate: _, ...rest } = listener;
  return JSON.stringify(rest);
}

/** A client's side of a finished handshake: the TLS socket and the tenant SNI named, if any. */
export interface AcceptedTls {
  readonly socket: tls.TLSSocket;
  readonly context: tls.SecureContext;
  readonly sniTenant: string | undefined;
}

/**
 * Runs the server side of a handshake on an accepted socket (implicit TLS, or after STLS /
 * STARTTLS / AUTH TLS). Rejects with the reason when the client fails it or is silent for
 * `timeoutMs`; the raw socket is destroyed then.
 */
export function acceptTls(raw: Socket, view: ListenerTls, timeoutMs: number, reuse?: tls.SecureContext): Promise<AcceptedTls> {
  // Paused, bytes already read (after a PROXY header, the ClientHello may be among them) stay
  // buffered, and the TLS socket takes them over as its first input; flowing, they would be lost.
  raw.pause();
  let chosen = view.contextFor(undefined).context;
  let sniTenant: string | undefined;
  const socket = new tls.TLSSocket(raw, {
    isServer: true,
    // Always the listener's context first: OpenSSL keys session tickets with the context a
    // handshake starts with, even when SNI switches it, so a data connection (FTPS) that
    // started elsewhere could not resume the control connection's session.
    secureContext: chosen,
    SNICallback: (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => {
      // A data connection keeps the control connection's certificate whatever name it sends.
      const hit = reuse ? { context: reuse, tenant: undefined } : view.contextFor(servername);
      chosen = hit.context;
      sniTenant = hit.tenant;
      cb(null, hit.context);
    },
  });
  return handshakeDone(socket, raw, 'secure', timeoutMs).then(() => ({ socket, context: chosen, sniTenant }));
}

/**
 * Runs the client side of a handshake toward a backend on a connected socket. Rejects with the
 * verification or handshake error (the caller turns it into a BackendError: next backend).
 */
export function connectTls(raw: Socket, options: tls.ConnectionOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ ...options, socket: raw });
  return handshakeDone(socket, raw, 'secureConnect', timeoutMs).then(() => socket);
}

/**
 * Resolves once `socket`'s handshake is done (`event`); rejects with why it was not (an error,
 * a close, or silence for `timeoutMs`), having destroyed the TLS socket and the TCP one under it.
 */
function handshakeDone(socket: tls.TLSSocket, raw: Socket, event: 'secure' | 'secureConnect', timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => fail(new Error('closed during the TLS handshake'));
    const fail = (err: Error) => {
      clearTimeout(timer);
      socket.off('close', onClose);
      socket.destroy();
      raw.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', fail);
    socket.once('close', onClose);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off('close', onClose);
      resolve();
    });
  });
}

/**
 * TLS on a connected backend socket (implicit TLS, or after the protocol's go-ahead). A failed
 * handshake or verification is BACKEND_TLS: the session moves on to the next backend.
 */
export async function secureBackend(raw: Socket, options: BackendTlsOptions, timeoutMs: number, where: string): Promise<tls.TLSSocket> {
  try {
    const secure = await connectTls(raw, options.options, timeoutMs);
    secure.on('error', () => {}); // the channels and splice report errors; this keeps a late one from crashing us
    return secure;
  } catch (err) {
    throw new BackendError('BACKEND_TLS', `TLS with ${where} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** STARTTLS toward a backend, once the module has read its go-ahead: the channel reads the TLS socket from now on. */
export async function upgradeBackendChannel(channel: LineChannel, options: BackendTlsOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  channel.detachForTls();
  const secure = await secureBackend(channel.socket, options, timeoutMs, 'the backend');
  channel.attachTls(secure);
  return secure;
}
