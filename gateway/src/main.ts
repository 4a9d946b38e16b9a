/**
 * The only file that listens: load config -> (simulator when no upstream) -> build server ->
 * listen -> warm -> handle signals. `node gateway/src/main.ts [--config FILE]`, or VELOX_CONFIG.
 */
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig, parseConfig } from './config/load.ts'
import type { GatewayConfig } from './config/schema.ts'
import { buildServer } from './server.ts'
import { createLogger, flushLogger } from './telemetry/logger.ts'

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, allowPositionals: false })
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
  let closeSimulator: (() => Promise<void>) | null = null
  if (config.upstreams.length === 0) {
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
    closeSimulator = () => sim.close()
    config = parseConfig({ ...config, upstreams: [{ name: 'simulator', url: sim.url, models: ['*'] }] }, 'embedded defaults')
    logger.warn(
      { simulator: sim.url },
      'NO UPSTREAM CONFIGURED: serving every model from the built-in inference simulator (deterministic fake completions). Pass --config FILE to proxy real inference servers.',
    )
  }

  const app = await buildServer(config, { logger })
  await app.listen({ host: config.server.host, port: config.server.port })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.server.port
  logger.info({ host: config.server.host, port, upstreams: config.upstreams.map((u) => u.name) }, 'velox gateway listening')
  void app.velox.warmed

  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      flushLogger(logger)
      process.exit(1)
    }
    stopping = true
    const deadline = config.server.shutdownTimeoutMs
    logger.info({ signal, inflight: app.velox.inflight.size, deadlineMs: deadline }, 'shutting down: no new connections, draining in-flight requests')
    app.server.close()
    app.server.closeIdleConnections()
    const drained = await app.velox.drain(deadline)
    if (!drained) logger.warn({ inflight: app.velox.inflight.size }, 'shutdown deadline passed: closing remaining connections')
    app.server.closeAllConnections()
    await app.close()
    if (closeSimulator) await closeSimulator()
    logger.info('stopped')
    flushLogger(logger)
    process.exit(0)
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}

main().catch((err: unknown) => {
  process.stderr.write(`velox: failed to start: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
