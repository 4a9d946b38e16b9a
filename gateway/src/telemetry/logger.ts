/**
 * The gateway's structured logger: pino writing asynchronously (buffered, flushed off the request
 * path), as fastify expects. Disabled levels cost nothing; per-request logging is off by default.
 *
 * A log destination that stops reading (a stalled log shipper, a pipe nobody drains) must not
 * stop the gateway: the lines waiting for it are bounded (LOG_BUFFER_MAX_BYTES; past that, new
 * lines are dropped), and the synchronous flush pino runs at exit retries a full non-blocking
 * destination for EXIT_FLUSH_MS, not forever (sonic-boom's default, which kept a stopped gateway
 * spinning in its exit handler). A blocking pipe that stays full still holds the exit: Node
 * joins its thread pool on exit, and the write waits in the kernel.
 */
import pino, { type Logger } from 'pino'

export type { Logger }

/** Log bytes held while the destination takes none; past this, new lines are dropped. */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024
/** How long the flush at exit retries a destination that takes nothing. */
export const EXIT_FLUSH_MS = 1_000

/** When the process began to exit (performance.now()), or null. */
let exitingAt: number | null = null
let watchingExit = false

/** A full destination is retried (asynchronously, while running) until the exit, then for EXIT_FLUSH_MS. */
function retryFull(): boolean {
  return exitingAt === null || performance.now() - exitingAt < EXIT_FLUSH_MS
}

/** Asynchronous writes to `fd`, bounded while it takes nothing, and an exit flush that gives up. */
function guardedDestination(fd: number): pino.DestinationStream {
  if (!watchingExit) {
    // Registered before pino's exit flush (which registers when its destination is made), so it runs first.
    watchingExit = true
    process.once('exit', () => (exitingAt = performance.now()))
  }
  const boom = pino.destination({ dest: fd, sync: false, maxLength: LOG_BUFFER_MAX_BYTES, retryEAGAIN: retryFull })
  const flushSync = boom.flushSync.bind(boom)
  boom.flushSync = () => {
    try {
      flushSync()
    } catch {
      // Nothing taken for EXIT_FLUSH_MS: what is still buffered is dropped.
    }
  }
  return boom
}

export function createLogger(level: string, destination: number | NodeJS.WritableStream = 1): Logger {
  const stream = typeof destination === 'number' ? guardedDestination(destination) : destination
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
