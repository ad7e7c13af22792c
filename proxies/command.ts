import type { LineChannel } from '../src/line-channel.js';
import { redactCommand } from '../src/log.js';
import type { LoginContext, LoginRequest } from './types.js';

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

/** What a pre-login command leads to: another state of the dialogue, credentials, or goodbye. */
export type DialogueOutcome<S extends string> = { next: S } | { login: LoginRequest } | { quit: true };

/** One pre-login command's handler: its argument, the client, the core's context, the dialogue so far. */
export type DialogueHandler<S extends string, D extends { state: S }> = (arg: string, client: LineChannel, ctx: LoginContext, d: D) => Promise<DialogueOutcome<S>> | DialogueOutcome<S>;

/**
 * Runs a pre-login state table (the RFC's diagram as data: state → verb → handler) until a
 * handler hands over credentials (returned) or the client says goodbye (undefined). A verb the
 * current state has no handler for goes to `unknown`, which answers and counts it.
 */
export async function runDialogue<S extends string, D extends { state: S }>(
  client: LineChannel,
  ctx: LoginContext,
  d: D,
  table: Record<S, Record<string, DialogueHandler<S, D>>>,
  unknown: (verb: string) => void,
): Promise<LoginRequest | undefined> {
  for (;;) {
    const { verb, arg } = await nextCommand(client, ctx);
    const handler = (table[d.state] as Record<string, DialogueHandler<S, D> | undefined>)[verb];
    if (!handler) {
      unknown(verb);
      continue;
    }
    const outcome = await handler(arg, client, ctx, d);
    if ('login' in outcome) return outcome.login;
    if ('quit' in outcome) return undefined;
    d.state = outcome.next;
  }
}
