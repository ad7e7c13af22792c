import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

const root = path.join(import.meta.dirname, '..', '..');
const cli = path.join(root, 'src', 'cli.ts');

/** A `concierge start` child process whose JSON log lines are kept and can be waited for. */
export interface CliInstance {
  readonly child: ChildProcess;
  /** The folder holding its config (the caller removes it). */
  readonly dir: string;
  /** Resolves with its exit code. */
  readonly exited: Promise<number | null>;
  /** The log records with this message, once there are at least `count`; rejects if the process exits first. */
  logged(message: string, count?: number): Promise<Array<Record<string, any>>>;
}

/** Writes `config` as tenants.json in a fresh temporary folder and starts `concierge start` on it. */
export async function startCli(config: object, tmpPrefix = 'concierge-cli-'): Promise<CliInstance> {
  const dir = await mkdtemp(path.join(os.tmpdir(), tmpPrefix));
  const file = path.join(dir, 'tenants.json');
  await writeFile(file, JSON.stringify(config));
  const child = spawn(process.execPath, ['--import', 'tsx', cli, 'start', '--config', file], { cwd: root });
  const records: Array<Record<string, any>> = [];
  let partial = '';
  let wake = () => {};
  child.stdout.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) records.push(JSON.parse(line));
    wake();
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  void exited.then(() => wake()); // a waiter learns of the exit, not only of new lines
  return {
    child,
    dir,
    exited,
    async logged(message, count = 1) {
      for (;;) {
        const found = records.filter((r) => r.message === message);
        if (found.length >= count) return found;
        if (child.exitCode !== null) throw new Error(`exited before ${count} × "${message}"`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}
