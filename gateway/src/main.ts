/**
 * The only file that listens: load config -> (simulator when no upstream) -> build server ->
 * listen -> warm -> handle signals. `npx node gateway/src/main.ts [--config FILE] [--check]`, or
 * VELOX_CONFIG. `--check` boots without listening and exits (0: it would be ready).
 * With `server.workers` other than 1, this process becomes the primary of a cluster and every
 * worker runs this same file.
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import type { FastifyInstance, FastifyListenOptions } from 'fastify'
import type { GatewayConfig } from './config/schema.ts'
import { endImportRelease, startImportRelease } from './runtime/compile-cache.ts'
import { applyHeapFlags } from './runtime/heap-flags.ts'
import { endEnglishOnlyZod, startEnglishOnlyZod } from './runtime/zod-english.ts'
import type { Logger } from './telemetry/logger.ts'
import type { ProfilePusher } from './telemetry/profiling.ts'

// Before anything allocates: short-lived Buffers go back to scavenges (runtime/heap-flags.ts).
applyHeapFlags()
// The gateway's modules are imported here, not statically, so that they load after Node's
// compile cache entries start being released as modules load (runtime/compile-cache.ts).
startImportRelease()
// zod's error messages in English only, not its 48 translations (runtime/zod-english.ts).
startEnglishOnlyZod()
const { runPrimary } = await import('./cluster/primary.ts')
const { ConfigError, loadConfig, parseConfig } = await import('./config/load.ts')
const { watchConfigFile } = await import('./config/watch.ts')
const { buildAdminServer } = await import('./admin/server.ts')
const { buildServer, metricsText } = await import('./server.ts')
const { releaseBootMemory } = await import('./runtime/boot-memory.ts')
const { createLogger, flushLogger } = await import('./telemetry/logger.ts')
const { startProfilePush } = await import('./telemetry/profiling.ts')
const { startTracing } = await import('./telemetry/tracing.ts')

async function main(): Promise<void> {
  // Every module main.ts imports has been loaded and run by now.
  endImportRelease()
  endEnglishOnlyZod()
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean', default: false } }, allowPositionals: false })
  const file = values.config ?? process.env.VELOX_CONFIG ?? null

  let config: GatewayConfig
  try {
    config = loadConfig(file)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`velox: ${err.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }

  const logger = createLogger(config.log.level)
  const workers = config.server.workers === 0 ? availableParallelism() : config.server.workers
  if (cluster.isPrimary && workers > 1 && !values.check) {
    const sim = config.upstreams.length === 0 ? await startEmbeddedSimulator(config, logger) : null
    logBootMemory(logger)
    await runPrimary({
      workers,
      host: config.server.host,
      port: config.server.port,
      shutdownTimeoutMs: config.server.shutdownTimeoutMs,
      shutdownDelayMs: config.server.shutdownDelayMs,
      logger,
      env: sim ? { VELOX_SIMULATOR_URL: sim.url } : {},
      onStopped: sim ? () => sim.close() : undefined,
    })
    return
  }

  let closeSimulator: (() => Promise<void>) | null = null
  let simulatorUrl = process.env.VELOX_SIMULATOR_URL ?? null
  if (config.upstreams.length === 0 && simulatorUrl === null) {
    const sim = await startEmbeddedSimulator(config, logger)
    closeSimulator = () => sim.close()
    simulatorUrl = sim.url
  }
  /** A config with no upstream is served by the simulator, at boot and after a reload alike. */
  const withSimulator = (c: GatewayConfig): GatewayConfig =>
    c.upstreams.length > 0 || simulatorUrl === null ? c : parseConfig({ ...c, upstreams: [{ name: 'simulator', url: simulatorUrl, models: ['*'] }] }, 'embedded defaults')
  config = withSimulator(config)

  // Before the server is built: spans need the SDK registered; without an endpoint nothing loads.
  const tracing = await startTracing(config.telemetry.tracing, logger)
  const app = await buildServer(config, { logger })
  if (values.check) {
    // Boot and exit: the config and everything built from it, pools warmed, nothing listening.
    // Exits 0 when the gateway would be ready. The image build runs it to write the compile cache.
    await app.velox.warmed
    const ready = app.velox.isReady()
    logger.info({ ready }, ready ? 'check passed: the gateway would be ready' : 'check failed: no upstream answered the warm-up')
    await app.close()
    await tracing?.shutdown().catch(() => undefined)
    if (closeSimulator) await closeSimulator()
    flushLogger(logger)
    process.exit(ready ? 0 : 1)
  }
  // Once the pools are warm, in the same turn that makes the gateway ready, and only with no call
  // in flight: the port is open before the pools are warm, and a request sent before readiness
  // must not wait on a full collection.
  void app.velox.warmed?.then(() => {
    if (app.velox.inFlight.size === 0) logBootMemory(logger)
  })
  // Cluster workers each bind the port with SO_REUSEPORT (fastify passes the option to net).
  const listenOptions: FastifyListenOptions & { reusePort?: boolean } = { host: config.server.host, port: config.server.port, reusePort: cluster.isWorker }
  await app.listen(listenOptions)
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.server.port
  logger.info({ host: config.server.host, port, upstreams: config.upstreams.map((u) => u.name) }, 'velox gateway listening')

  const reloadFromSource = () => app.velox.reload(() => withSimulator(loadConfig(file)))
  const reload = (why: string): void => {
    logger.info({ why, file }, 'reloading config')
    void reloadFromSource()
  }

  let admin: FastifyInstance | null = null
  if (config.admin.port !== undefined) {
    const tokenEnv = config.admin.tokenEnv
    const token = tokenEnv !== undefined ? process.env[tokenEnv] : undefined
    if (tokenEnv !== undefined && (token === undefined || token === '')) {
      logger.fatal({ tokenEnv }, `admin.tokenEnv: ${tokenEnv} is not set; refusing to start an unguarded admin listener`)
      flushLogger(logger)
      process.exit(78)
    }
    admin = buildAdminServer(app.velox, { token: token ?? null, reload: reloadFromSource, metricsText: () => metricsText(app.velox.metrics), logger })
    const adminListen: FastifyListenOptions & { reusePort?: boolean } = { host: config.admin.host, port: config.admin.port, reusePort: cluster.isWorker }
    await admin.listen(adminListen)
    const a = admin.server.address()
    logger.info({ host: config.admin.host, port: typeof a === 'object' && a !== null ? a.port : config.admin.port, token: token !== undefined }, 'admin listener up')
  }
  process.on('SIGHUP', () => reload('SIGHUP'))
  const watcher = file !== null ? watchConfigFile(file, () => reload('file changed')) : null

  let profiler: ProfilePusher | null = null
  try {
    profiler = await startProfilePush(config.telemetry.profiling, process.env, logger)
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'continuous profiling not started')
  }

  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      flushLogger(logger)
      process.exit(1)
    }
    stopping = true
    watcher?.close()
    // Readiness fails first; the listener stays open while the load balancer deregisters this
    // instance (it still sends new connections meanwhile), then the drain begins.
    app.velox.beginShutdown()
    const delay = signal === 'SIGTERM' ? config.server.shutdownDelayMs : 0
    if (delay > 0) {
      logger.info({ signal, delayMs: delay }, 'shutting down: readiness failed; still accepting connections until the load balancer stops sending')
      await new Promise((r) => setTimeout(r, delay))
    }
    const deadline = config.server.shutdownTimeoutMs
    logger.info({ signal, inflight: app.velox.inFlight.size, deadlineMs: deadline }, 'shutting down: no new connections, draining in-flight requests')
    app.server.close()
    app.server.closeIdleConnections()
    const drained = await app.velox.drain(deadline)
    if (!drained) {
      logger.warn({ open: app.velox.openRequests, inflight: app.velox.inFlight.size }, 'shutdown deadline passed: stopping what still runs')
      app.velox.abortInFlight()
      await new Promise((r) => setTimeout(r, 50)) // let the final error events flush
    }
    app.server.closeAllConnections()
    await admin?.close()
    await app.close()
    await profiler?.stop()
    await tracing?.shutdown().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'flushing spans failed'))
    if (closeSimulator) await closeSimulator()
    logger.info('stopped')
    flushLogger(logger)
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

function logBootMemory(logger: Logger): void {
  const { rssBefore, rssAfter, ms } = releaseBootMemory()
  const mb = (bytes: number): number => Math.round(bytes / 1e5) / 10
  logger.info({ rssMB: mb(rssAfter), releasedMB: mb(rssBefore - rssAfter), ms: Math.round(ms) }, 'boot memory released')
}

async function startEmbeddedSimulator(config: GatewayConfig, logger: Logger): Promise<{ url: string; close(): Promise<void> }> {
  if (!config.simulator.enabled) {
    logger.fatal('no upstream configured and the simulator is disabled: nothing to serve')
    flushLogger(logger)
    process.exit(78)
  }
  const { startSimulator } = await import('./simulator/server.ts')
  const sim = await startSimulator({
    ttftMs: config.simulator.ttftMs,
    interTokenMs: config.simulator.interTokenMs,
    tokens: config.simulator.tokens,
  })
  logger.warn(
    { simulator: sim.url },
    'NO UPSTREAM CONFIGURED: serving every model from the built-in inference simulator (deterministic fake completions). Pass --config FILE to proxy real inference servers.',
  )
  return sim
}

main().catch((err: unknown) => {
  process.stderr.write(`velox: failed to start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
