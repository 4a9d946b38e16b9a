import { closedLoop } from '../lib/load.ts'
import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { check, computeAdded, interleaved, ROUND_REWARM_REQUESTS, warmUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, directTarget, proxyConfig, singleUpstreamConfig, startGateway, startSimulator } from '../lib/targets.ts'

const FANOUT = 16

/**
 * What routing costs as upstreams multiply: one simulator behind 1 upstream name vs behind 16, so
 * the only difference is the router's choice among 16 members (and 16 pools).
 */
export const routingFanout: Scenario = {
  name: 'routing-16-upstreams',
  title: `Routing overhead, ${FANOUT} upstreams vs 1`,
  description: `One at a time through a gateway with 1 upstream and one with ${FANOUT} upstreams (same simulator behind every name).`,
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 10, perRound: 100 } : { rounds: 25, perRound: 100 }
    const simulator = await startSimulator(ctx, { tokens: 16 })
    const wide = proxyConfig(
      Array.from({ length: FANOUT }, (_, i) => ({
        name: `sim-${String(i).padStart(2, '0')}`,
        url: simulator.url,
        models: ['*'],
        pool: { connections: 8, warm: 2 },
      })),
    )
    const [one, many] = await Promise.all([
      startGateway(ctx, singleUpstreamConfig(simulator.url), { name: 'gateway-1-upstream' }),
      startGateway(ctx, wide, { name: `gateway-${FANOUT}-upstreams` }),
    ])
    const lanes = [directTarget(simulator), one, many].map((target) => new Lane(target, { connections: 1, keepHeader: 'x-velox-upstream' }))
    const spec = chatRequest(chatBody({ stream: false }))
    try {
      await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), warmUpRequests(ctx))
      await interleaved(plan.rounds, lanes, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        await lane.phase(() => closedLoop(lane.client, spec, plan.perRound, lane.recorder('latency')))
      })
    } finally {
      await closeLanes(lanes)
    }
    const rows = computeAdded([
      lanes[0]!.row('latency', null),
      lanes[1]!.row('latency', 'direct'),
      // Over the 1-upstream gateway: this row's "added" is the cost of the fan-out itself.
      lanes[2]!.row('latency', one.name),
    ])
    return {
      parameters: { ...plan, warmUpRequests: warmUpRequests(ctx), upstreams: FANOUT, connections: 1 },
      rows,
      checks: [check('failed requests', totalErrors(lanes), '<=', 0, 'requests')],
      notes: [`added on the ${many.name} row is over ${one.name}: the routing cost of ${FANOUT} members`, ...errorNotes(lanes)],
    }
  },
}
