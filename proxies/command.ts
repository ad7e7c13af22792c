import type { LineChannel } from '../src/line-channel.js';
import { redactCommand } from '../src/log.js';
import type { LoginContext } from './types.js';

/** A command line split into its upper-cased verb and its argument text. */
export interface Command {
  readonly line: string;
  readonly verb: string;
  readonly arg: string;
}

export function parseCommand(line: string): Command {
  const space = line.indexOf(' ');
  return { line, verb: (space < 0 ? line : line.slice(0, space)).toUpperCase(), arg: space < 0 ? '' : line.slice(space + 1) };
}

/**
 * The client's next well-framed command before login. An over-long line, or one with NUL or a
 * bare CR, is answered with the protocol's words and counted toward `maxErrors` (the channel has
 * already dropped it), and the next line is read. At debug level the line is logged, secrets
 * redacted.
 */
export async function nextCommand(client: LineChannel, ctx: LoginContext): Promise<Command> {
  for (;;) {
    const event = await client.next();
    if (event.kind === 'tooLong') ctx.reject('lineTooLong', 'line too long');
    else if (event.kind === 'invalid') ctx.reject('syntax', 'NUL or CR inside a line');
    else {
      if (ctx.log.isDebugEnabled()) ctx.log.debug('client command', { line: redactCommand(event.line) });
      return parseCommand(event.line);
    }
  }
}
