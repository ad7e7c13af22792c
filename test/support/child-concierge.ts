import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';

const root = path.join(import.meta.dirname, '..', '..');
const cli = path.join(root, 'src', 'cli.ts');

/** `concierge <args>` as a child process, its JSON log lines collected and awaitable. */
export class ChildConcierge {
  readonly records: Array<Record<string, any>> = [];
  readonly exited: Promise<unknown>;
  private partial = '';
  private wake = () => {};

  private constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (this.partial + chunk.toString('utf8')).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) if (line.startsWith('{')) this.records.push(JSON.parse(line));
      this.wake();
    });
    child.stderr!.resume();
    this.exited = once(child, 'exit');
    void this.exited.then(() => this.wake());
  }

  static start(configFile: string): ChildConcierge {
    return new ChildConcierge(spawn(process.execPath, ['--import', 'tsx', cli, 'start', '--config', configFile], { cwd: root }));
  }

  /** The first log record with this message (waits for it). */
  async logged(message: string): Promise<Record<string, any>> {
    for (;;) {
      const found = this.records.find((r) => r.message === message);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`exited before "${message}"`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Waits until `n` log records carry this message. */
  async loggedTimes(message: string, n: number): Promise<void> {
    for (;;) {
      if (this.records.filter((r) => r.message === message).length >= n) return;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`exited before ${n} × "${message}"`);
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** SIGKILL: no handler runs, nothing is flushed. */
  async kill9(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Runs `concierge <args>` to its end: stdout, stderr, exit status. */
export async function runCli(args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const child = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { cwd: root });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { stdout, stderr, code };
}
