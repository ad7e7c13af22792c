import winston from 'winston';

export type Logger = winston.Logger;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** JSON lines on stdout, one object per event. */
export function createLogger(level: LogLevel = 'info', stream?: NodeJS.WritableStream): Logger {
  const transport = stream
    ? new winston.transports.Stream({ stream })
    : new winston.transports.Console({ stderrLevels: [], consoleWarnLevels: [] });
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [transport],
  });
}

/** A logger that drops everything (library use, benchmarks). */
export function createSilentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
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
