/**
 * Concierge as the benchmark runs it: the built CLI (`node dist/src/cli.js start --config F`)
 * in a child process, with a throwaway tenants.json: tenant bench.test, sourceAddress
 * 127.0.0.2, backendUser "full", one POP3 backend; optionally POP3S on the listener and / or
 * implicit TLS toward the backend.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { spawnChild } from './children.js';
import { DOMAIN } from './mail-data.js';
import { freePort, waitForGreeting, type Endpoint } from './net-util.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliPath = path.join(repoRoot, 'dist', 'src', 'cli.js');
export const SOURCE_ADDRESS = '127.0.0.2';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface ConciergeProcess {
  readonly label: string;
  readonly logLevel: LogLevel;
  readonly endpoint: Endpoint;
  readonly pid: number;
  readonly configFile: string;
  readonly logFile: string;
  stop(): Promise<void>;
}

/** Newest modification time of the .ts files under the given folders. */
function newestSource(dirs: readonly string[]): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d);
  return newest;
}

/**
 * Builds dist/ (`npm run build`) when it is missing or older than src/, proxies/ or demo/.
 * If a rebuild of a stale dist fails (someone is mid-edit), the existing dist is used and a
 * warning says so. Returns a note for the report.
 */
export function ensureBuilt(allowBuild: boolean): string {
  const sources = ['src', 'proxies', 'demo'].map((d) => path.join(repoRoot, d));
  const exists = existsSync(cliPath);
  const stale = exists && newestSource(sources) > statSync(cliPath).mtimeMs;
  if (exists && (!stale || !allowBuild)) return stale ? 'dist/ is older than the sources (--no-build given): measured the existing build' : 'dist/ up to date';
  process.stderr.write(`${exists ? 'dist/ is older than the sources' : 'dist/ is missing'}: npm run build\n`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status === 0) return 'built by the benchmark (npm run build)';
  if (!exists) throw new Error('npm run build failed and there is no dist/ to run');
  process.stderr.write('WARNING: npm run build failed; measuring the previous dist/ build\n');
  return 'npm run build FAILED: measured the previous dist/ build';
}

export interface ConciergeOptions {
  readonly label: string;
  readonly dir: string;
  readonly backend: Endpoint;
  readonly logLevel: LogLevel;
  /** Extra node flags for the child, e.g. ['--cpu-prof', '--cpu-prof-dir', DIR]. */
  readonly nodeFlags?: readonly string[];
  /** POP3S toward clients (implicit TLS) with this certificate; `client`: how clients then connect. */
  readonly listenTls?: { readonly cert: string; readonly key: string; readonly client: tls.ConnectionOptions };
  /** Implicit TLS toward the backend (then `backend` is its POP3S endpoint), verified against this CA and name. */
  readonly backendTls?: { readonly ca: string; readonly servername: string };
  /** The config's `workers` (default 1: one process). */
  readonly workers?: number | 'auto';
}

export function tenantsJson(
  listen: Endpoint,
  backend: Endpoint,
  logLevel: LogLevel,
  listenTls?: ConciergeOptions['listenTls'],
  backendTls?: ConciergeOptions['backendTls'],
  workers: number | 'auto' = 1,
): object {
  return {
    workers,
    log: { level: logLevel },
    listeners: [
      {
        protocol: 'pop3',
        address: listen.host,
        port: listen.port,
        banner: 'Concierge bench POP3 ready',
        ...(listenTls ? { tls: 'implicit', certificate: { cert: listenTls.cert, key: listenTls.key } } : {}),
      },
    ],
    tenants: [
      {
        domain: DOMAIN,
        sourceAddress: SOURCE_ADDRESS,
        backendUser: 'full',
        backends: {
          pop3: [{ host: backend.host, port: backend.port, ...(backendTls ? { tls: 'implicit', ca: backendTls.ca, servername: backendTls.servername } : {}) }],
        },
      },
    ],
  };
}

/** Starts one Concierge child on a free port and waits for its greeting. */
export async function startConcierge(o: ConciergeOptions): Promise<ConciergeProcess> {
  const slug = o.label.replace(/[^a-z0-9]+/gi, '-');
  for (let attempt = 1; ; attempt++) {
    const endpoint: Endpoint = { host: '127.0.0.1', port: await freePort(), ...(o.listenTls ? { tls: o.listenTls.client } : {}) };
    const configFile = path.join(o.dir, `tenants-${slug}.json`);
    const logFile = path.join(o.dir, `concierge-${slug}.log`);
    await writeFile(configFile, JSON.stringify(tenantsJson(endpoint, o.backend, o.logLevel, o.listenTls, o.backendTls, o.workers), null, 2));
    // Logs go to a file, as a deployment's would (not a pipe this process has to drain).
    const fd = openSync(logFile, 'a');
    const child = spawnChild(`concierge ${o.label}`, process.execPath, [...(o.nodeFlags ?? []), cliPath, 'start', '--config', configFile], {
      cwd: repoRoot,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    try {
      await waitForGreeting(endpoint, 15_000, () => child.hasExited());
    } catch (err) {
      await child.stop(1_000);
      const log = await readFile(logFile, 'utf8').catch(() => '');
      if (attempt < 3 && /EADDRINUSE/.test(log)) continue;
      throw new Error(`Concierge (${o.label}) did not start: ${(err as Error).message}\n${log.split('\n').slice(-20).join('\n')}`);
    }
    return { label: o.label, logLevel: o.logLevel, endpoint, pid: child.pid, configFile, logFile, stop: () => child.stop(10_000) };
  }
}
