/**
 * The gateway's structured logger: pino writing asynchronously (buffered, flushed off the request
 * path), as fastify expects. Disabled levels cost nothing; per-request logging is off by default.
 *
 * A log destination that stops reading (a stalled log shipper, a pipe nobody drains) or goes away
 * (its reader exited) must not stop the gateway:
 * - the lines waiting for it are bounded (LOG_BUFFER_MAX_BYTES; past that, new lines are dropped);
 * - the synchronous flush at exit retries a full non-blocking destination for EXIT_FLUSH_MS, not
 *   forever (sonic-boom's default, which kept a stopped gateway spinning in its exit handler);
 * - a destination whose reader is gone (EPIPE) is given up: no more lines go to it. sonic-boom 4,
 *   which pino bundles, retried EPIPE in its exit flush forever (a gateway stopped with its log
 *   reader gone never exited); the destination here is sonic-boom 5's, which ends the flush on any
 *   error other than EAGAIN/EBUSY, and is made as pino.destination() makes its own.
 * A blocking pipe that stays full still holds the exit: Node joins its thread pool on exit, and
 * the write waits in the kernel.
 */
import pino, { type Logger } from 'pino'
import type { SonicBoom as Destination } from 'sonic-boom'
import sonicBoom from 'sonic-boom'

// Its CommonJS export is the class itself; its types say so as a default export, which TypeScript
// reads as the module's namespace under Node's module resolution.
const SonicBoom = sonicBoom as unknown as typeof Destination

export type { Logger }

/** Log bytes held while the destination takes none; past this, new lines are dropped. */
export const LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024
/** How long the flush at exit retries a destination that takes nothing. */
export const EXIT_FLUSH_MS = 1_000

/** When the process began to exit (performance.now()), or null. */
let exitingAt: number | null = null
/** Destinations flushed at exit; weakly held, so a logger dropped by its owner is not kept alive. */
const flushAtExit = new Set<WeakRef<Destination>>()
let watchingExit = false

function onExit(): void {
  exitingAt = performance.now()
  for (const ref of flushAtExit) {
    try {
      ref.deref()?.flushSync()
    } catch {
      // Nothing taken for EXIT_FLUSH_MS, or the reader is gone: what is still buffered is dropped.
    }
  }
}

/** A full destination is retried (asynchronously, while running) until the exit, then for EXIT_FLUSH_MS. */
function retryFull(): boolean {
  return exitingAt === null || performance.now() - exitingAt < EXIT_FLUSH_MS
}

function ignore(): void {}

/** Log lines dropped by this process, by why: the destination took nothing for too long (`full`), or failed (`gone`). */
const dropped = { full: 0, gone: 0 }

/** Log lines dropped so far (velox_log_lines_dropped_total). */
export function droppedLogLines(): Readonly<typeof dropped> {
  return dropped
}

/** Asynchronous writes to `fd`, bounded while it takes nothing, and an exit flush that gives up. */
function guardedDestination(fd: number): Destination {
  if (!watchingExit) {
    watchingExit = true
    process.once('exit', onExit)
  }
  const boom = new SonicBoom({ fd, sync: false, maxLength: LOG_BUFFER_MAX_BYTES, retryEAGAIN: retryFull })
  const ref = new WeakRef(boom)
  flushAtExit.add(ref)
  // Past LOG_BUFFER_MAX_BYTES waiting: the line is not kept (pino writes one line per write).
  boom.on('drop', () => void dropped.full++)
  boom.on('error', () => {
    // The reader is gone (EPIPE), or the descriptor failed otherwise: nothing more can reach it,
    // and a log line is never worth stopping the gateway for (pino's own destination does the same
    // on EPIPE, and rethrows anything else).
    flushAtExit.delete(ref)
    boom.write = () => {
      dropped.gone++
      return true
    }
    boom.flushSync = ignore
    boom.flush = (cb?: (err?: Error) => unknown) => void cb?.()
    boom.end = ignore
  })
  boom.on('close', () => flushAtExit.delete(ref))
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
