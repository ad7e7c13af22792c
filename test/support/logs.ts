import { PassThrough } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.js';

/** A real winston logger whose JSON lines are kept for assertions. */
export function captureLogs(level: 'info' | 'debug' = 'debug'): { logger: Logger; lines: () => string[]; records: () => Array<Record<string, unknown>> } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const logger = createLogger(level, stream);
  const lines = () => text.split('\n').filter((l) => l.length > 0);
  return { logger, lines, records: () => lines().map((l) => JSON.parse(l) as Record<string, unknown>) };
}
