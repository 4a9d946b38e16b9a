/**
 * The primary of a multi-core gateway: forks one worker per core (or `server.workers`), each of
 * which listens on the same port with SO_REUSEPORT, so the kernel spreads connections and no byte
 * passes through this process. The primary restarts crashed workers, aggregates metrics for
 * `/metrics`, forwards SIGHUP (config reload), and on SIGTERM/SIGINT drains workers and exits 0.
 */
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import type { Logger } from '../telemetry/logger.ts'
import { flushLogger } from '../telemetry/logger.ts'
import { isMetricsRequest, type MetricsReply } from './messages.ts'
import { freePort } from './free-port.ts'

export interface PrimaryOptions {
  workers: number
  host: string
  port: number
  shutdownTimeoutMs: number
  /** SIGTERM only: how long workers keep serving with readiness failed before they drain. */
  shutdownDelayMs: number
  logger: Logger
  /** Extra environment for every worker (e.g. the simulator's URL). */
  env: Record<string, string>
  onStopped?: () => Promise<void>
}

/** Restarts faster than this apart, repeated, mean a crash loop: back off. */
const MIN_RESTART_INTERVAL_MS = 1_000

export async function runPrimary(opts: PrimaryOptions): Promise<void> {
  const { logger } = opts
  const port = opts.port === 0 ? await freePort(opts.host) : opts.port
  const env = { ...opts.env, VELOX_PORT: String(port), VELOX_CLUSTER_WORKER: '1' }
  const aggregator = new AggregatorRegistry()
  let stopping = false
  const lastStart = new Map<number, number>()

  const fork = (slot: number): Worker => {
    const worker = cluster.fork({ ...env, VELOX_WORKER_SLOT: String(slot) })
    lastStart.set(slot, Date.now())
    worker.on('message', (msg: unknown) => {
      if (!isMetricsRequest(msg)) return
      aggregator.clusterMetrics().then(
        (text) => worker.send({ type: 'velox:metrics:reply', id: msg.id, text } satisfies MetricsReply),
        (err: Error) => worker.send({ type: 'velox:metrics:reply', id: msg.id, error: err.message } satisfies MetricsReply),
      )
    })
    worker.on('exit', (code, signal) => {
      if (stopping) return
      logger.error({ slot, pid: worker.process.pid, code, signal }, 'gateway worker exited; restarting it')
      const since = Date.now() - (lastStart.get(slot) ?? 0)
      setTimeout(() => fork(slot), since < MIN_RESTART_INTERVAL_MS ? MIN_RESTART_INTERVAL_MS : 0)
    })
    return worker
  }

  for (let slot = 0; slot < opts.workers; slot++) fork(slot)
  logger.info({ workers: opts.workers, port, pid: process.pid }, 'velox primary started workers')

  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) {
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined)
    logger.info({ signal, workers: workers.length }, 'shutting down workers')
    const exited = Promise.all(workers.map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve())))))
    // Workers get the same signal: SIGTERM waits out the drain delay, SIGINT does not.
    for (const w of workers) w.process.kill(signal)
    const delay = signal === 'SIGTERM' ? opts.shutdownDelayMs : 0
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), delay + opts.shutdownTimeoutMs + 2_000).unref())
    if ((await Promise.race([exited, deadline])) === 'timeout') {
      logger.warn('workers did not stop in time; killing them')
      for (const w of workers) w.process.kill('SIGKILL')
    }
    await opts.onStopped?.()
    logger.info('stopped')
    flushLogger(logger)
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: asking every worker to reload its config')
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP')
  })
}

