/**
 * The gateway's structured logger: pino writing asynchronously (buffered, flushed off the request
 * path), as fastify expects. Disabled levels cost nothing; per-request logging is off by default.
 */
import pino, { type Logger } from 'pino'

export type { Logger }

export function createLogger(level: string, destination: number | NodeJS.WritableStream = 1): Logger {
  const stream =
    typeof destination === 'number'
      ? pino.destination({ dest: destination, sync: false })
      : destination
  return pino(
    {
      level,
      base: { pid: process.pid },
      // Never let a credential reach the log, whatever object is logged.
      redact: { paths: ['req.headers.authorization', 'headers.authorization', '*.apiKey', 'apiKey'], censor: '[redacted]' },
    },
    stream,
  )
}

/** Flushes buffered log lines; call before exiting. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush()
  } catch {
    // A destination that is not ready yet has nothing buffered to lose.
  }
}
