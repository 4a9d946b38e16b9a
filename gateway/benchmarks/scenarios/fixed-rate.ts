import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { assertWarm, closedLoop, openLoop } from '../lib/load.ts'
import { NGINX_MISSING_NOTE } from '../lib/nginx.ts'
import { check, computeAdded, findRow, optionalRow, interleaved, ROUND_REWARM_REQUESTS, topUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { STANDARD_ANSWER_TOKENS } from '../lib/shared-stack.ts'
import { chatBody, chatRequest } from '../lib/targets.ts'

/**
 * Open loop at a fixed arrival rate, latency from each request's intended send time: what a
 * service under steady traffic sees, stalls included (no coordinated omission).
 */
export const fixedRate: Scenario = {
  name: 'fixed-rate',
  title: '(b) Fixed arrival rate, open loop',
  description: 'Requests sent on a fixed schedule regardless of responses; latency measured from the intended send time.',
  async run(ctx): Promise<Measurement> {
    const rate = ctx.options.ratePerSecond
    const plan = ctx.options.quick ? { rounds: 6, roundMs: 500 } : { rounds: 20, roundMs: 500 }
    const { targets } = await ctx.shared.standard()
    const spec = chatRequest(chatBody({ stream: false, maxTokens: STANDARD_ANSWER_TOKENS }))
    // Enough connections that a stall never makes the generator wait for a free socket.
    const lanes = targets.map((target) => new Lane(target, { connections: 64 }))
    let lateSends = 0
    try {
      await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), topUpRequests(ctx))
      // Lets the client open the connections the open loop needs at this rate.
      for (const lane of lanes) assertWarm(lane.name, await openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: 300 }, null))
      await interleaved(plan.rounds, lanes, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        const result = await lane.phase(() => openLoop(lane.client, spec, { ratePerSecond: rate, durationMs: plan.roundMs }, lane.recorder('latency')))
        lateSends += result.lateSends
      })
    } finally {
      await closeLanes(lanes)
    }
    const rows = computeAdded(lanes.map((lane) => lane.row('latency', lane.name === 'direct' ? null : 'direct')))
    const gateway = findRow(rows, 'gateway', 'latency')
    const nginx = optionalRow(rows, 'nginx', 'latency')
    const sent = lanes.reduce((n, lane) => n + lane.requests, 0)
    return {
      parameters: { ratePerSecond: rate, ...plan, topUpRequests: topUpRequests(ctx), secondsPerTarget: (plan.rounds * plan.roundMs) / 1000, connections: 64 },
      rows,
      checks: [
        check(`gateway added p99 at ${rate} req/s`, gateway.added!.p99, '<=', 0.42, 'ms'),
        ...(nginx === null ? [] : [check(`gateway added p99 minus nginx added p99 at ${rate} req/s`, gateway.added!.p99 - nginx.added!.p99, '<=', 0.15, 'ms')]),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: [
        `${lateSends} of ${sent} sends left more than 0.05 ms after their intended time (generator lag; included in the latencies)`,
        ...errorNotes(lanes),
        ...(nginx === null ? [NGINX_MISSING_NOTE] : []),
      ],
    }
  },
}
