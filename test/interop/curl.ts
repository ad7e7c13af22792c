import { spawn } from 'node:child_process';

/** What one curl run left: its exit code (-1 when killed by a signal), raw stdout and its error text. */
export interface CurlResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** What a failing interop test tells whoever runs it without curl. */
export const CURL_MISSING = 'curl is not installed: run `sudo .ci/install-interop.sh` before `npm run test:interop`';

// A hung proxy should fail one test, not stall the run; a later --max-time in extraArgs wins.
const defaultMaxTimeSeconds = '20';

/**
 * Runs `curl -s -S --user user:password [extraArgs] url`.
 * `pop3://127.0.0.1:PORT/` lists (LIST), `pop3://127.0.0.1:PORT/1` retrieves message 1 (RETR 1);
 * extraArgs may pick the SASL mechanism: `['--login-options', 'AUTH=PLAIN']` or `'AUTH=+LOGIN'`.
 * The user name may not contain ':' (curl splits --user at the first one); the password may.
 */
export function curlPop3(url: string, user: string, password: string, extraArgs: string[] = []): Promise<CurlResult> {
  const args = ['-s', '-S', '--max-time', defaultMaxTimeSeconds, '--user', `${user}:${password}`, ...extraArgs, url];
  return new Promise((resolve, reject) => {
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? new Error(CURL_MISSING, { cause: error }) : error);
    });
    // 'close' rather than 'exit': both pipes are drained by then.
    child.once('close', (code) => {
      resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}
