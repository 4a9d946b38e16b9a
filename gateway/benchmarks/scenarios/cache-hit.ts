import { closedLoop, type RequestSource } from '../lib/load.ts'
import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { check, computeAdded, findRow, interleaved, ROUND_REWARM_REQUESTS, warmUpRequests, type Check, type Measurement, type ResultRow, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, directTarget, singleUpstreamConfig, startGateway, startSimulator, uniqueChatRequests, type Target } from '../lib/targets.ts'
import type { BenchContext } from '../lib/scenario.ts'

const CACHE_STATUS = 'x-velox-cache'
/** A miss may cost at most this much CPU per request over the cache being off. */
const MISS_CPU_BUDGET = 1.1

interface GatewayPair {
  /** Row-name prefix: '' for the gateway under test, 'baseline-' for the A/B's other side. */
  readonly prefix: string
  readonly off: Target
  readonly on: Target
}

async function startPair(ctx: BenchContext, simulatorUrl: string, prefix: string, entry?: string): Promise<GatewayPair> {
  const off = singleUpstreamConfig(simulatorUrl)
  const opts = (name: string) => ({ name, ...(entry === undefined ? {} : { entry, nodeArgs: ctx.options.baselineNodeArgs }) })
  const [cacheOff, cacheOn] = await Promise.all([
    startGateway(ctx, off, opts(`${prefix}gateway-cache-off`)),
    startGateway(ctx, { ...off, cache: { enabled: true, backend: 'memory' } }, opts(`${prefix}gateway-cache-on`)),
  ])
  return { prefix, off: cacheOff, on: cacheOn }
}

/**
 * What the exact response cache costs and saves, one request at a time: the proxy path with the
 * cache off, a cache miss (every body new: lookup, upstream call, store) and a cache hit (one body,
 * stored during warm-up), all over going direct to the simulator. With `--baseline-gateway`, the
 * same three rows for another checkout's gateway run in the same interleaved rounds.
 */
export const cacheHit: Scenario = {
  name: 'cache-hit',
  title: 'Exact cache: hit and miss vs cache off',
  description: 'One at a time; cache off, cache on with every body new (miss), cache on with one repeated body (hit).',
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 10, perRound: 100 } : { rounds: 25, perRound: 100 }
    const simulator = await startSimulator(ctx, { tokens: 16 })
    const baselineEntry = ctx.options.baselineGatewayEntry
    const pairs = await Promise.all([
      startPair(ctx, simulator.url, ''),
      ...(baselineEntry === null ? [] : [startPair(ctx, simulator.url, 'baseline-', baselineEntry)]),
    ])
    const repeated = chatRequest(chatBody({ stream: false }))
    const unique = uniqueChatRequests({ stream: false })
    const lane = (target: Target, name: string): Lane => new Lane({ ...target, name }, { connections: 1, keepHeader: CACHE_STATUS })
    const lanes: { lane: Lane; source: RequestSource }[] = [{ lane: lane(directTarget(simulator), 'direct'), source: repeated }]
    for (const p of pairs) {
      lanes.push(
        { lane: lane(p.off, `${p.prefix}gateway-cache-off`), source: unique },
        { lane: lane(p.on, `${p.prefix}gateway-cache-miss`), source: unique },
        { lane: lane(p.on, `${p.prefix}gateway-cache-hit`), source: repeated },
      )
    }
    try {
      await warmUpLanes(lanes, warmUpRequests(ctx))
      await interleaved(plan.rounds, lanes, async ({ lane, source }) => {
        await closedLoop(lane.client, source, ROUND_REWARM_REQUESTS, null)
        await lane.phase(() => closedLoop(lane.client, source, plan.perRound, lane.recorder('latency')))
      })
    } finally {
      await closeLanes(lanes.map((l) => l.lane))
    }
    const byName = new Map(lanes.map((l) => [l.lane.name, l.lane]))
    const rows: ResultRow[] = [byName.get('direct')!.row('latency', null)]
    const checks: Check[] = []
    const notes: string[] = ['the miss and hit rows share one gateway process: CPU is metered per row; RSS and GC are that process as a whole']
    for (const { prefix } of pairs) {
      const off = byName.get(`${prefix}gateway-cache-off`)!
      const miss = byName.get(`${prefix}gateway-cache-miss`)!
      const hit = byName.get(`${prefix}gateway-cache-hit`)!
      rows.push(
        off.row('latency', 'direct'),
        miss.row('latency', 'direct', { missShare: miss.keptShare('miss') }),
        hit.row('latency', 'direct', { hitShare: hit.keptShare('hit') }),
      )
      const side = prefix === '' ? '' : ` (${prefix.slice(0, -1)})`
      const missOverOff = (miss.cost?.cpuUsPerRequest ?? NaN) / (off.cost?.cpuUsPerRequest ?? NaN)
      notes.push(`${prefix}cache miss vs cache off: ${missOverOff.toFixed(3)}x the CPU per request`)
      checks.push(
        check(`cache hits among repeated requests${side}`, hit.keptShare('hit'), '>=', 0.99, 'ratio'),
        check(`cache misses among unique requests${side}`, miss.keptShare('miss'), '>=', 0.99, 'ratio'),
        // A check, not just a row: the miss path is meant to be nearly free.
        check(`cache miss vs cache off, CPU per request${side}`, missOverOff, '<=', MISS_CPU_BUDGET, 'ratio'),
      )
    }
    computeAdded(rows)
    checks.push(
      check('cache hit p50 at or below cache-off p50', findRow(rows, 'gateway-cache-hit', 'latency').latency.p50, '<=', findRow(rows, 'gateway-cache-off', 'latency').latency.p50, 'ms'),
      check('failed requests', totalErrors(lanes.map((l) => l.lane)), '<=', 0, 'requests'),
    )
    return {
      parameters: { ...plan, warmUpRequests: warmUpRequests(ctx), connections: 1, backend: 'memory', baselineGateway: baselineEntry !== null },
      rows,
      checks,
      notes: [...notes, ...errorNotes(lanes.map((l) => l.lane))],
    }
  },
}
