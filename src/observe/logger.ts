import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/**
 * The yard's logger: JSON lines (pino) on stdout, the access log included. `destination` lets
 * tests and embedding programs send them elsewhere.
 */
export function createLogger(level: LevelWithSilent, destination: NodeJS.WritableStream | number = 1): Logger {
  const dest = typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}
