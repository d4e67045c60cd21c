// The relay logs through this minimal interface (a winston logger fits it); it has no dependency on
// the observability module.
export interface RelayLogger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

const nothing = (): void => undefined;

export const silentLogger: RelayLogger = { debug: nothing, info: nothing, warn: nothing, error: nothing };
