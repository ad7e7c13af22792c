/**
 * One place that knows what the benchmark started: child processes and temp dirs.
 * Everything registered here is undone on a normal end, on an error, and on Ctrl-C / SIGTERM.
 */
import { rmSync } from 'node:fs';

type Undo = { label: string; run: () => Promise<void> | void; sync?: () => void };

const undos: Undo[] = [];
let running: Promise<void> | undefined;
let installed = false;

/** Registers an undo step; the latest registered runs first. Returns a function that unregisters it. */
export function onCleanup(label: string, run: () => Promise<void> | void, sync?: () => void): () => void {
  installSignalHandlers();
  const undo: Undo = { label, run, sync };
  undos.push(undo);
  return () => {
    const i = undos.indexOf(undo);
    if (i >= 0) undos.splice(i, 1);
  };
}

/** Registers a temp dir for removal. */
export function removeDirOnCleanup(dir: string): void {
  const rm = () => rmSync(dir, { recursive: true, force: true });
  onCleanup(`remove ${dir}`, rm, rm);
}

/** Runs every registered undo step once, newest first; errors are printed, not thrown. */
export function cleanupAll(): Promise<void> {
  running ??= (async () => {
    while (undos.length > 0) {
      const undo = undos.pop()!;
      try {
        await undo.run();
      } catch (err) {
        process.stderr.write(`cleanup: ${undo.label}: ${(err as Error).message}\n`);
      }
    }
  })();
  return running;
}

function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    process.stderr.write(`\n${signal}: stopping children and removing temp dirs...\n`);
    const hardStop = setTimeout(() => process.exit(130), 15_000);
    hardStop.unref();
    void cleanupAll().then(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  // Last resort (an exception escaped, or process.exit was called early): the synchronous parts.
  process.on('exit', () => {
    for (const undo of undos.reverse()) {
      try {
        undo.sync?.();
      } catch {
        // nothing more can be done at exit
      }
    }
  });
}
