// winston logger: JSON in a cluster (one object a line), readable text on a terminal. A child logger
// per PortForward carries its namespace/name on every line.
import * as winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level: string, format: 'json' | 'text'): Logger {
  const base =
    format === 'json'
      ? winston.format.combine(
          winston.format.timestamp(),
          winston.format.errors({ stack: false }),
          winston.format.json(),
        )
      : winston.format.combine(
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.errors({ stack: false }),
          winston.format.printf(({ timestamp, level: lvl, message, ...rest }) => {
            const fields = Object.entries(rest)
              .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
              .join(' ');
            return `${String(timestamp)} ${lvl.toUpperCase().padEnd(5)} ${String(message)}${fields ? ' ' + fields : ''}`;
          }),
        );
  return winston.createLogger({
    level,
    format: base,
    // Everything to stderr: stdout stays free for what a command prints on purpose.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

/** The child logger of one PortForward. */
export function forResource(logger: Logger, key: string): Logger {
  return logger.child({ portforward: key });
}

/** A message for logs and status from anything thrown, with its causes. */
export function errorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // One line: client-node's ApiException repeats the response's body and headers on later lines.
  let msg = err.message.split('\n')[0];
  let cause: unknown = err.cause;
  while (cause instanceof Error) {
    const line = cause.message.split('\n')[0];
    // client-node's "HTTP-Code: 401" says nothing the outer message has not said.
    if (!msg.includes(line) && !/^HTTP-Code: \d+$/.test(line)) msg += `: ${line}`;
    cause = cause.cause;
  }
  return msg;
}
