import winston from 'winston';
import TransportStream from 'winston-transport';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
type Fields = Record<string, unknown>;

const MESSAGE = Symbol.for('message');
const noop = (): void => {};
const LEVEL = Symbol.for('level');

/**
 * One JSON object per line: timestamp, level, message, then the fields. The fields are our own
 * strings and numbers, so plain JSON.stringify is enough (logform's json format pays for cycle
 * and bigint handling on every line).
 */
const jsonLine = winston.format((info) => {
  const { level, message, [LEVEL]: _level, [MESSAGE]: _message, ...fields } = info as winston.Logform.TransformableInfo & { [LEVEL]?: unknown; [MESSAGE]?: unknown };
  (info as unknown as Record<symbol, string>)[MESSAGE] = JSON.stringify({ timestamp: new Date().toISOString(), level, message, ...fields });
  return info;
});

/**
 * Writes the lines of one event-loop turn to stdout in one write. Busy sessions log several
 * lines per turn, and stdout to a file or pipe is a synchronous write() per call on Linux; the
 * Console transport also schedules an event per line. Pending lines are written on exit too.
 */
class BatchedStdout extends TransportStream {
  private pending = '';
  private scheduled = false;
  private readonly flush = (): void => {
    this.scheduled = false;
    const text = this.pending;
    this.pending = '';
    if (text.length > 0) process.stdout.write(text);
  };

  constructor() {
    super();
    process.once('exit', this.flush);
  }

  override log(info: Record<symbol, string>, done: () => void): void {
    this.pending += `${info[MESSAGE]}\n`;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
    done();
  }

  override close(): void {
    this.flush();
    process.off('exit', this.flush);
  }
}

/** JSON lines on stdout (or `stream`, unbatched, for tests), one object per event. */
export function createLogger(level: LogLevel = 'info', stream?: NodeJS.WritableStream): Logger {
  const transport = stream ? new winston.transports.Stream({ stream }) : new BatchedStdout();
  return winston.createLogger({ level, format: jsonLine(), transports: [transport] });
}

/** A logger that drops everything (library use, benchmarks). */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}

/**
 * Which levels a logger writes, asked once per logger: winston works it out from its level
 * names on every call, several times a session (measured 1.2% of an SMTP session's CPU). The
 * level is set at start and never changed (a restart applies "log").
 */
function enabledLevels(logger: Logger): Record<LogLevel, boolean> {
  let levels = enabledByLogger.get(logger);
  if (!levels) {
    const on = (level: LogLevel) => !logger.silent && logger.isLevelEnabled(level);
    levels = { error: on('error'), warn: on('warn'), info: on('info'), debug: on('debug') };
    enabledByLogger.set(logger, levels);
  }
  return levels;
}

const enabledByLogger = new WeakMap<Logger, Record<LogLevel, boolean>>();

/**
 * A session's logger: the session's fields on every line, like a winston child, but the level
 * is checked before anything is built. winston runs its formats before its transports filter by
 * level, so an unguarded `info()` costs a full format even when only warnings are kept.
 */
export class SessionLog {
  private fields: Fields | undefined;

  /** `fields` is called once, at the first line actually written. */
  constructor(
    private readonly logger: Logger,
    private readonly initialFields: () => Fields,
    private readonly extraFields: Fields = {},
  ) {}

  /** Adds fields to every later line (the tenant once known, the backend once logged in). */
  with(fields: Fields): void {
    Object.assign(this.extraFields, fields);
    if (this.fields) Object.assign(this.fields, fields);
  }

  isDebugEnabled(): boolean {
    return enabledLevels(this.logger).debug;
  }

  isInfoEnabled(): boolean {
    return enabledLevels(this.logger).info;
  }

  error(message: string, meta?: Fields): void {
    this.write('error', message, meta);
  }
  warn(message: string, meta?: Fields): void {
    this.write('warn', message, meta);
  }
  info(message: string, meta?: Fields): void {
    this.write('info', message, meta);
  }
  debug(message: string, meta?: Fields): void {
    this.write('debug', message, meta);
  }

  /**
   * Renders the line as the logger's format would and hands it to the logger's transports
   * directly: winston's own path pipes each record through an object-mode stream before the
   * transport sees it, which measured as most of the cost of a session's three info lines.
   */
  private write(level: LogLevel, message: string, meta: Fields | undefined): void {
    const { logger } = this;
    if (!enabledLevels(logger)[level]) return;
    this.fields ??= { ...this.initialFields(), ...this.extraFields };
    const info: Record<string | symbol, unknown> = { level, message, ...this.fields, ...meta };
    info[LEVEL] = level;
    info[MESSAGE] = JSON.stringify({ timestamp: new Date().toISOString(), level, message, ...this.fields, ...meta });
    for (const transport of logger.transports) {
      if (transport.silent || (transport.level && logger.levels[transport.level]! < logger.levels[level]!)) continue;
      transport.log?.(info, noop);
    }
  }
}

const SECRET_VERBS = /^(PASS|AUTH)(\s+\S+)?\s.*$/i;

/**
 * A command line as it may appear in a debug log: the argument of PASS, and the SASL payload
 * of AUTH, are replaced. SASL continuation lines never reach this function (callers log "[sasl]").
 */
export function redactCommand(line: string): string {
  const m = SECRET_VERBS.exec(line);
  if (!m) return line;
  return m[1]!.toUpperCase() === 'AUTH' ? `AUTH${m[2] ?? ''} [redacted]` : 'PASS [redacted]';
}
