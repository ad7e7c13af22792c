/**
 * Child-process entry: runs the repository's DemoPop3Server so that its CPU is its own
 * process's, not mixed with the load generator's. Prints {"port":N} on stdout once listening;
 * stops on SIGTERM / SIGINT or when the parent's stdin pipe closes (parent gone).
 *
 *   node --import tsx bench/lib/demo-backend-child.ts <maildir> [host] [port]
 */
import { DemoPop3Server } from '../../demo/pop3-server.js';

const [maildir, host = '127.0.0.1', port = '0'] = process.argv.slice(2);
if (!maildir) {
  process.stderr.write('usage: demo-backend-child.ts <maildir> [host] [port]\n');
  process.exit(2);
}

const server = new DemoPop3Server({ maildir, host, port: Number(port), greeting: 'bench demo POP3 ready' });
const { port: bound } = await server.listen();
process.stdout.write(`${JSON.stringify({ port: bound })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void server.close().then(() => process.exit(0));
  setTimeout(() => process.exit(0), 3_000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
