/**
 * Runs the traffic evaluation against a real gateway process-in-process: the inference simulator
 * as upstream (answers take `ttftMs`, as a model would; the semantic lookup races it), the
 * gateway built by `buildServer` with semantic caching on and every other setting at its default.
 */
import { once } from 'node:events'
import http from 'node:http'
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
  /**
   * The upstream answers only once the gateway's semantic lookup for the request has decided
   * (hit, miss or skipped): every lookup is seen, whatever the machine's load, and a miss costs
   * the lookup's time instead of a model's. Measures what the cache decides, not the race.
   */
  readonly upstreamAfterLookup?: boolean
  /** Extra `cache.semantic` settings. */
  readonly semantic?: Record<string, unknown>
}

/** One fresh gateway (an empty cache) per order. */
export async function trafficEval(pairs: readonly LabelledPair[], order: TrafficOrder, opts: TrafficRunOptions = {}): Promise<TrafficReport> {
  const sim = await startSimulator({ ttftMs: opts.ttftMs ?? (opts.upstreamAfterLookup ? 0 : 250), tokens: 12 })
  // The traffic is sequential: the lookup the gateway started last belongs to the request the
  // upstream receives (the gateway dispatches, then starts the lookup, in one tick).
  let decided: Promise<unknown> = Promise.resolve()
  const gate = opts.upstreamAfterLookup ? await afterLookupUpstream(sim.url, () => decided) : null
  const config = parseConfig(
    {
      log: { level: 'silent' },
      server: { host: '127.0.0.1', port: 0 },
      upstreams: [{ name: 'sim', url: gate?.url ?? sim.url, models: ['*'] }],
      routing: { health: { intervalMs: 0 } },
      cache: { semantic: { enabled: true, ...opts.semantic } },
    },
    'traffic evaluation',
  )
  const app = await buildServer(config, { logger: createLogger('silent', process.stderr), env: {}, defaultMetrics: false })
  if (gate !== null) {
    const cache = app.velox.cache!
    const lookup = cache.semanticLookup.bind(cache)
    cache.semanticLookup = (plan, signal) => {
      const p = lookup(plan, signal)
      decided = p ?? Promise.resolve()
      return p
    }
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  await app.velox.warmed
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  try {
    return await runTraffic(pairs, order, { url, model: 'sim', waitForStores: (n) => waitForSemanticStores(url, n) })
  } finally {
    app.server.closeAllConnections()
    await app.close()
    await gate?.close()
    await sim.close()
  }
}

/** Forwards to the simulator, holding each chat request until `decision()` settles. */
async function afterLookupUpstream(target: string, decision: () => Promise<unknown>): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const held = req.method === 'POST' ? decision() : Promise.resolve()
      void held
        .then(() => fetch(`${target}${req.url}`, { method: req.method!, headers: { 'content-type': req.headers['content-type'] ?? 'application/json' }, ...(req.method === 'POST' ? { body: Buffer.concat(chunks) } : {}) }))
        .then(async (upstream) => {
          const body = Buffer.from(await upstream.arrayBuffer())
          res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' }).end(body)
        })
        // A semantic hit cancels the upstream request: nothing is left to answer.
        .catch(() => res.destroy())
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    }),
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
