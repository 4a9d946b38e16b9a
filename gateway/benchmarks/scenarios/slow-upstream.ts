import { assertWarm, openLoop } from '../lib/load.ts'
import { closeLanes, errorNotes, Lane, totalErrors } from '../lib/lane.ts'
import { check, computeAdded, warmUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, proxyConfig, startGateway, startSimulator, type Simulator } from '../lib/targets.ts'

const UPSTREAMS = 4
const STALL_MS = 50

/**
 * Tail latency while one of four upstreams turns slow: the same open-loop traffic through one
 * gateway, first with four healthy upstreams, then from the moment one starts stalling every
 * response by 50 ms. The second phase includes the time routing needs to notice.
 */
export const slowUpstream: Scenario = {
  name: 'slow-upstream',
  title: `Tail latency, 1 of ${UPSTREAMS} upstreams slow`,
  description: `Open loop at the fixed rate through a gateway over ${UPSTREAMS} simulators; then one stalls ${STALL_MS} ms before headers.`,
  async run(ctx): Promise<Measurement> {
    const rate = ctx.options.ratePerSecond
    const plan = ctx.options.quick ? { phaseMs: 2000 } : { phaseMs: 4000 }
    const simulators: Simulator[] = await Promise.all(
      Array.from({ length: UPSTREAMS }, (_, i) => startSimulator(ctx, { tokens: 16, name: `simulator-${i}` })),
    )
    const gateway = await startGateway(ctx, proxyConfig(simulators.map((sim, i) => ({ name: `sim-${i}`, url: sim.url, models: ['*'], pool: { connections: 64, warm: 4 } }))))
    const slowName = `sim-${UPSTREAMS - 1}`
    const healthy = new Lane({ ...gateway, name: 'gateway-all-healthy' }, { connections: 256, keepHeader: 'x-velox-upstream' })
    const degraded = new Lane({ ...gateway, name: 'gateway-one-slow' }, { connections: 256, keepHeader: 'x-velox-upstream' })
    const spec = chatRequest(chatBody({ stream: false }))
    try {
      await healthy.warmUp(spec, warmUpRequests(ctx))
      await degraded.warmUp(spec, 1_000)
      for (const lane of [healthy, degraded]) assertWarm(lane.name, await openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: 300 }, null))
      for (const [lane, slow] of [[healthy, false], [degraded, true]] as const) {
        if (slow) await setFaults(simulators[UPSTREAMS - 1]!, { stallBeforeHeadersMs: STALL_MS })
        await lane.phase(() => openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: plan.phaseMs }, lane.recorder('latency')))
      }
    } finally {
      await closeLanes([healthy, degraded])
    }
    const servedBySlow = (lane: Lane): string => (lane.keptHeaders.size > 0 ? `${(100 * lane.keptShare(slowName)).toFixed(1)}%` : 'unknown (no x-velox-upstream header)')
    const rows = computeAdded([
      healthy.row('latency', null, { [`servedBy_${slowName}`]: servedBySlow(healthy) }),
      degraded.row('latency', healthy.name, { [`servedBy_${slowName}`]: servedBySlow(degraded) }),
    ])
    return {
      parameters: { ratePerSecond: rate, ...plan, warmUpRequests: warmUpRequests(ctx), upstreams: UPSTREAMS, stallBeforeHeadersMs: STALL_MS, slowUpstream: slowName },
      rows,
      checks: [check('failed requests', totalErrors([healthy, degraded]), '<=', 0, 'requests')],
      notes: [`latency from intended send time; ${slowName} stalls ${STALL_MS} ms from the start of the second phase`, ...errorNotes([healthy, degraded])],
    }
  },
}

async function setFaults(simulator: Simulator, faults: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${simulator.url}/_sim/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  })
  if (!response.ok) throw new Error(`POST ${simulator.url}/_sim/faults answered ${response.status}: ${await response.text()}`)
}
