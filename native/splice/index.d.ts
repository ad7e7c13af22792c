/** How a relayed direction ended: its source's EOF with every byte written on, an error, or `stop()`. */
export type SpliceEnd = 'eof' | 'error' | 'stopped';

/**
 * Starts relaying `srcFd` → `dstFd` (connected, non-blocking TCP sockets) on a thread of its own.
 * `onDone` runs once, on the main thread, after the thread has exited; it is not called for a
 * relay ended by `stop()`. Returns the relay's id.
 */
export function start(srcFd: number, dstFd: number, onDone: (end: SpliceEnd, bytes: number, reason: string) => void): number;
/** Bytes written to the destination so far (0 once the relay is over). */
export function progress(id: number): number;
/** Wakes the thread and waits for it to exit: afterwards neither fd is touched again. Returns the bytes written. */
export function stop(id: number): number;
