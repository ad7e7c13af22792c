/**
 * The wire form of a stored message (RFC 1939 §3): every line ends in CRLF, a line that
 * begins with '.' gets one more '.', and ".\r\n" ends the response. Everything else is sent
 * byte for byte, so 8-bit messages survive.
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { Socket } from 'node:net';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const CRLF = Buffer.from('\r\n');
const EXTRA_DOT = Buffer.from('.');
const TERMINATOR = Buffer.from('.\r\n');

/** Large reads keep the per-chunk JavaScript work negligible next to the copy itself. */
export const readChunkOctets = 1024 * 1024;

/** Encodes a message chunk by chunk; the state carries line starts and CRs across chunk edges. */
export class WireEncoder {
  private atLineStart = true;
  private lastOctet = -1;

  /** The wire form of the next chunk; returns the chunk itself when nothing needs inserting. */
  encode(chunk: Buffer): Buffer {
    const parts: Buffer[] = [];
    let copiedUpTo = 0;
    let lineStart = 0;
    while (lineStart < chunk.length) {
      if (this.atLineStart && chunk[lineStart] === DOT) {
        parts.push(chunk.subarray(copiedUpTo, lineStart), EXTRA_DOT);
        copiedUpTo = lineStart;
      }
      const lf = chunk.indexOf(LF, lineStart);
      if (lf === -1) {
        this.atLineStart = false;
        break;
      }
      const octetBeforeLf = lf > 0 ? chunk[lf - 1] : this.lastOctet;
      if (octetBeforeLf !== CR) {
        parts.push(chunk.subarray(copiedUpTo, lf), CRLF);
        copiedUpTo = lf + 1;
      }
      this.atLineStart = true;
      lineStart = lf + 1;
    }
    this.lastOctet = chunk[chunk.length - 1] ?? this.lastOctet;
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(copiedUpTo));
    return Buffer.concat(parts);
  }

  /** Closes an unterminated last line and appends the terminating ".\r\n". */
  finish(): Buffer {
    return this.atLineStart ? TERMINATOR : Buffer.concat([CRLF, TERMINATOR]);
  }
}

/** Counts a message's octets in CRLF form, before dot-stuffing: the size STAT and LIST report. */
export class WireSizeCounter {
  private octets = 0;
  private lastOctet = -1;

  add(chunk: Buffer): void {
    this.octets += chunk.length;
    for (let lf = chunk.indexOf(LF); lf !== -1; lf = chunk.indexOf(LF, lf + 1)) {
      const octetBeforeLf = lf > 0 ? chunk[lf - 1] : this.lastOctet;
      if (octetBeforeLf !== CR) this.octets += 1;
    }
    this.lastOctet = chunk[chunk.length - 1] ?? this.lastOctet;
  }

  total(): number {
    const unterminated = this.lastOctet !== -1 && this.lastOctet !== LF;
    return this.octets + (unterminated ? CRLF.length : 0);
  }
}

/** Counts the wire size of the message stored at `path`. */
export async function measureWireOctets(path: string): Promise<number> {
  const counter = new WireSizeCounter();
  for await (const chunk of createReadStream(path, { highWaterMark: readChunkOctets })) {
    counter.add(chunk as Buffer);
  }
  return counter.total();
}

/**
 * Streams `statusLine` and the message at `path` to the socket, honouring backpressure.
 * An error before the first write is thrown so that the caller can still answer -ERR; once
 * the response has begun, the only honest ending left is to drop the connection.
 */
export async function sendMessage(
  socket: Socket,
  path: string,
  statusLine: string,
  signal: AbortSignal,
): Promise<void> {
  const encoder = new WireEncoder();
  // Held back one chunk so that the terminator leaves in the same write as the last bytes:
  // clients such as node-pop3 look for "\r\n.\r\n" at the end of a single read.
  let held: Buffer = Buffer.from(`${statusLine}\r\n`, 'latin1');
  let started = false;
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: readChunkOctets })) {
      started = true;
      await writeWithBackpressure(socket, held, signal);
      held = encoder.encode(chunk as Buffer);
    }
    started = true;
    await writeWithBackpressure(socket, Buffer.concat([held, encoder.finish()]), signal);
  } catch (error) {
    if (!started) throw error;
    socket.destroy();
  }
}

/** Reads the header section, the blank line and the first `bodyLines` lines (for TOP). */
export async function readTop(path: string, bodyLines: number): Promise<Buffer> {
  let data: Buffer = Buffer.alloc(0);
  let lineStart = 0;
  let inBody = false;
  let bodyLinesSeen = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: readChunkOctets })) {
    data = Buffer.concat([data, chunk as Buffer]);
    for (let lf = data.indexOf(LF, lineStart); lf !== -1; lf = data.indexOf(LF, lineStart)) {
      if (inBody) bodyLinesSeen += 1;
      else inBody = lf === lineStart || (lf === lineStart + 1 && data[lineStart] === CR);
      lineStart = lf + 1;
      if (inBody && bodyLinesSeen >= bodyLines) return data.subarray(0, lineStart);
    }
  }
  return data;
}

/** The complete wire form of a small in-memory message, terminator included. */
export function encodeWhole(message: Buffer): Buffer {
  const encoder = new WireEncoder();
  return Buffer.concat([encoder.encode(message), encoder.finish()]);
}

async function writeWithBackpressure(socket: Socket, data: Buffer, signal: AbortSignal): Promise<void> {
  if (!socket.write(data)) await once(socket, 'drain', { signal });
}
