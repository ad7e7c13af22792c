/**
 * Child-process entry: runs the repository's DemoPop3Server so that its CPU is its own
 * process's, not mixed with the load generator's. With a certificate and key it also runs a
 * POP3S server over the same maildir in the same process (so "the backend's CPU" covers both).
 * Prints {"port":N} (and "tlsPort") on stdout once listening; stops on SIGTERM / SIGINT or when
 * the parent's stdin pipe closes (parent gone).
 *
 *   node --import tsx bench/lib/demo-backend-child.ts <maildir> [host] [port] [cert.pem key.pem]
 */
import { DemoPop3Server } from '../../demo/pop3-server.js';

const [maildir, host = '127.0.0.1', port = '0', cert, key] = process.argv.slice(2);
if (!maildir || (cert !== undefined && key === undefined)) {
  process.stderr.write('usage: demo-backend-child.ts <maildir> [host] [port] [cert.pem key.pem]\n');
  process.exit(2);
}

const servers = [new DemoPop3Server({ maildir, host, port: Number(port), greeting: 'bench demo POP3 ready' })];
if (cert !== undefined && key !== undefined) {
  servers.push(new DemoPop3Server({ maildir, host, port: 0, greeting: 'bench demo POP3S ready', tls: { cert, key } }));
}
const [plain, secure] = await Promise.all(servers.map((s) => s.listen()));
process.stdout.write(`${JSON.stringify({ port: plain!.port, ...(secure ? { tlsPort: secure.port } : {}) })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void Promise.all(servers.map((s) => s.close())).then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
