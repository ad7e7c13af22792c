/**
 * Child processes the benchmark owns: spawned here, registered for cleanup, stopped by their
 * own PID (or, for a detached child such as dovecot's master, by its own process group).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { onCleanup } from './cleanup.js';

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly process: ChildProcess;
  /** Resolves with the exit once the process has gone. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once it has exited. */
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL (the group if detached) after `graceMs`; resolves when gone. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnChild(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const child = spawn(command, args, options);
  if (child.pid === undefined) {
    // spawn failures (ENOENT) are reported through 'error' before any pid exists
    throw new Error(`${name}: could not start ${command}`);
  }
  const pid = child.pid;
  const detached = options.detached === true;
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', () => {
      done = true;
      resolve({ code: null, signal: null });
    });
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  const kill = (signal: NodeJS.Signals) => {
    if (done) return;
    try {
      if (detached) process.kill(-pid, signal);
      else process.kill(pid, signal);
    } catch {
      // already gone
    }
  };
  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5_000) =>
    (stopping ??= (async () => {
      if (!done) {
        kill('SIGTERM');
        const timer = setTimeout(() => kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // a detached master's helpers may outlive it for a moment
      if (detached) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // group empty
        }
      }
      unregister();
    })());
  const unregister = onCleanup(`stop ${name} (pid ${pid})`, () => stop(), () => kill('SIGKILL'));
  return { name, pid, process: child, exited, hasExited: () => done, stop };
}

/** Reads the first line a child prints on stdout, or fails with its output if it exits first. */
export async function firstLine(child: Child, timeoutMs: number): Promise<string> {
  const stdout = child.process.stdout;
  if (!stdout) throw new Error(`${child.name}: no stdout pipe`);
  let text = '';
  let stderr = '';
  child.process.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${child.name}: no output within ${timeoutMs} ms\n${stderr}`)), timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      stdout.off('data', onData);
      resolve(text.slice(0, nl));
    };
    stdout.on('data', onData);
    void child.exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`${child.name} exited (code ${e.code}, signal ${e.signal}) before it was ready\n${stderr}`));
    });
  });
}
