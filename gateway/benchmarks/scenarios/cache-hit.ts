import { closedLoop, type RequestSource } from '../lib/load.ts'
import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { check, computeAdded, findRow, interleaved, ROUND_REWARM_REQUESTS, warmUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, directTarget, singleUpstreamConfig, startGateway, startSimulator, uniqueChatRequests, type Target } from '../lib/targets.ts'

const CACHE_STATUS = 'x-velox-cache'

/**
 * What the exact response cache costs and saves, one request at a time: the proxy path with the
 * cache off, a cache miss (every body new: lookup, upstream call, store) and a cache hit (one body,
 * stored during warm-up), all over going direct to the simulator.
 */
export const cacheHit: Scenario = {
  name: 'cache-hit',
  title: 'Exact cache: hit and miss vs cache off',
  description: 'One at a time; cache off, cache on with every body new (miss), cache on with one repeated body (hit).',
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 10, perRound: 100 } : { rounds: 25, perRound: 100 }
    const simulator = await startSimulator(ctx, { tokens: 16 })
    const off = singleUpstreamConfig(simulator.url)
    const [cacheOff, cacheOn] = await Promise.all([
      startGateway(ctx, off, { name: 'gateway-cache-off' }),
      startGateway(ctx, { ...off, cache: { enabled: true, backend: 'memory' } }, { name: 'gateway-cache-on' }),
    ])
    const repeated = chatRequest(chatBody({ stream: false }))
    const unique = uniqueChatRequests({ stream: false })
    const lane = (target: Target, name: string): Lane => new Lane({ ...target, name }, { connections: 1, keepHeader: CACHE_STATUS })
    const lanes: { lane: Lane; source: RequestSource }[] = [
      { lane: lane(directTarget(simulator), 'direct'), source: repeated },
      { lane: lane(cacheOff, 'gateway-cache-off'), source: unique },
      { lane: lane(cacheOn, 'gateway-cache-miss'), source: unique },
      { lane: lane(cacheOn, 'gateway-cache-hit'), source: repeated },
    ]
    try {
      await warmUpLanes(lanes, warmUpRequests(ctx))
      await interleaved(plan.rounds, lanes, async ({ lane, source }) => {
        await closedLoop(lane.client, source, ROUND_REWARM_REQUESTS, null)
        await lane.phase(() => closedLoop(lane.client, source, plan.perRound, lane.recorder('latency')))
      })
    } finally {
      await closeLanes(lanes.map((l) => l.lane))
    }
    const [direct, off_, miss, hit] = lanes.map((l) => l.lane) as [Lane, Lane, Lane, Lane]
    const rows = computeAdded([
      direct.row('latency', null),
      off_.row('latency', 'direct'),
      miss.row('latency', 'direct', { missShare: miss.keptShare('miss') }),
      hit.row('latency', 'direct', { hitShare: hit.keptShare('hit') }),
    ])
    return {
      parameters: { ...plan, warmUpRequests: warmUpRequests(ctx), connections: 1, backend: 'memory' },
      rows,
      checks: [
        check('cache hits among repeated requests', hit.keptShare('hit'), '>=', 0.99, 'ratio'),
        check('cache misses among unique requests', miss.keptShare('miss'), '>=', 0.99, 'ratio'),
        check('cache hit p50 at or below cache-off p50', findRow(rows, hit.name, 'latency').latency.p50, '<=', findRow(rows, off_.name, 'latency').latency.p50, 'ms'),
        check('failed requests', totalErrors(lanes.map((l) => l.lane)), '<=', 0, 'requests'),
      ],
      notes: ['the miss and hit rows share one gateway process: CPU is metered per row; RSS and GC are that process as a whole', ...errorNotes(lanes.map((l) => l.lane))],
    }
  },
}
