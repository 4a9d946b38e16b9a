/**
 * Runs the traffic evaluation against a real gateway process-in-process: the inference simulator
 * as upstream (answers take `ttftMs`, as a model would; the semantic lookup races it), the
 * gateway built by `buildServer` with semantic caching on and every other setting at its default.
 */
import type { AddressInfo } from 'node:net'
import { parseConfig } from '../../src/config/load.ts'
import { buildServer } from '../../src/server.ts'
import { startSimulator } from '../../src/simulator/server.ts'
import { createLogger } from '../../src/telemetry/logger.ts'
import type { LabelledPair } from '../../src/cache/semantic/evaluate.ts'
import { runTraffic, type TrafficOrder, type TrafficReport } from '../../src/cache/semantic/traffic-eval.ts'

export interface TrafficRunOptions {
  /** The simulator's time to first byte: the semantic lookup must answer before it to be seen. */
  readonly ttftMs?: number
  /** Extra `cache.semantic` settings. */
  readonly semantic?: Record<string, unknown>
}

/** One fresh gateway (an empty cache) per order. */
export async function trafficEval(pairs: readonly LabelledPair[], order: TrafficOrder, opts: TrafficRunOptions = {}): Promise<TrafficReport> {
  const sim = await startSimulator({ ttftMs: opts.ttftMs ?? 250, tokens: 12 })
  const config = parseConfig(
    {
      log: { level: 'silent' },
      server: { host: '127.0.0.1', port: 0 },
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }],
      routing: { health: { intervalMs: 0 } },
      cache: { semantic: { enabled: true, ...opts.semantic } },
    },
    'traffic evaluation',
  )
  const app = await buildServer(config, { logger: createLogger('silent', process.stderr), env: {}, defaultMetrics: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await app.velox.warmed
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  try {
    return await runTraffic(pairs, order, { url, model: 'sim', waitForStores: (n) => waitForSemanticStores(url, n) })
  } finally {
    app.server.closeAllConnections()
    await app.close()
    await sim.close()
  }
}

/** Polls the gateway's metrics until `n` semantic stores have been decided (stored or rejected). */
async function waitForSemanticStores(url: string, n: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    const text = await (await fetch(`${url}/metrics`)).text()
    let total = 0
    for (const m of text.matchAll(/^velox_cache_stores_total\{kind="semantic",outcome="[a-z]+"\} (\d+)/gm)) total += Number(m[1])
    if (total >= n) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`the gateway did not store semantic entry ${n} within 10 s`)
}
