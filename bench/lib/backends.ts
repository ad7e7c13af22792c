/**
 * The POP3 backend both paths are measured against: the repository's demo server in a child
 * process, or a throwaway dovecot tuned like the team harness's (see dovecot.ts).
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { firstLine, spawnChild } from './children.js';
import { startDovecot } from './dovecot.js';
import { bulkAccount, SMALL_MESSAGES, smallMessage, writeMessages, type Account, type BigMessage } from './mail-data.js';
import { waitForGreeting, type Endpoint } from './net-util.js';

export type BackendKind = 'demo' | 'dovecot';

export interface Backend {
  readonly kind: BackendKind;
  readonly endpoint: Endpoint;
  /** The same mail over POP3S (TLS from the first byte), when BackendData.tls was given. */
  readonly tlsEndpoint?: Endpoint;
  /** Process whose CPU is the backend's; `tree` when its helpers and children count too. */
  readonly pid: number;
  readonly tree: boolean;
  readonly description: string;
  stop(): Promise<void>;
}

export interface BackendData {
  /** A private directory the backend may fill (removed by the caller). */
  readonly dir: string;
  readonly accounts: readonly Account[];
  readonly big: BigMessage;
  /** Also serve POP3S with this certificate; `client` is how a client reaches it (CA, name). */
  readonly tls?: { readonly cert: string; readonly key: string; readonly client: tls.ConnectionOptions };
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function startBackend(kind: BackendKind, data: BackendData): Promise<Backend> {
  return kind === 'dovecot' ? startDovecot(data) : startDemo(data);
}

/**
 * The demo layout: `<root>/passwd` with `user:password` lines and `<root>/<user>/cur/`.
 * Users are the full login names (u1@bench.test): Concierge runs with backendUser "full",
 * so direct and proxied clients send the same USER line.
 */
async function startDemo(data: BackendData): Promise<Backend> {
  const root = path.join(data.dir, 'demo-maildir');
  await mkdir(root, { recursive: true });
  const users = [...data.accounts, bulkAccount];
  await writeFile(path.join(root, 'passwd'), users.map((a) => `${a.login}:${a.password}\n`).join(''));
  for (const a of data.accounts) {
    await writeMessages(path.join(root, a.login, 'cur'), Array.from({ length: SMALL_MESSAGES }, (_, i) => smallMessage(a.login, i + 1)));
  }
  await writeMessages(path.join(root, bulkAccount.login, 'cur'), [data.big.bytes]);
  await chmod(root, 0o755);

  const script = path.join(repoRoot, 'bench', 'lib', 'demo-backend-child.ts');
  const tlsArgs = data.tls ? [data.tls.cert, data.tls.key] : [];
  const child = spawnChild('demo backend', process.execPath, ['--import', 'tsx', script, root, '127.0.0.1', '0', ...tlsArgs], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const line = await firstLine(child, 30_000);
  child.process.stdout?.resume();
  child.process.stderr?.resume();
  const { port, tlsPort } = JSON.parse(line) as { port: number; tlsPort?: number };
  const endpoint = { host: '127.0.0.1', port };
  const tlsEndpoint = tlsPort !== undefined && data.tls ? { host: '127.0.0.1', port: tlsPort, tls: data.tls.client } : undefined;
  for (const e of [endpoint, ...(tlsEndpoint ? [tlsEndpoint] : [])]) await waitForGreeting(e, 10_000, () => child.hasExited());
  return {
    kind: 'demo',
    endpoint,
    ...(tlsEndpoint ? { tlsEndpoint } : {}),
    pid: child.pid,
    tree: false,
    description: `DemoPop3Server (demo/pop3-server.ts) in a child process, pid ${child.pid}${tlsEndpoint ? ', with a second DemoPop3Server for POP3S (Node TLS) in the same process' : ''}`,
    stop: () => child.stop(),
  };
}
