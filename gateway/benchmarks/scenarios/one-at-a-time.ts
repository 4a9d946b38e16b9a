import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { closedLoop } from '../lib/load.ts'
import { NGINX_MISSING_NOTE } from '../lib/nginx.ts'
import { check, computeAdded, findRow, optionalRow, interleaved, ROUND_REWARM_REQUESTS, topUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { STANDARD_ANSWER_TOKENS } from '../lib/shared-stack.ts'
import { chatBody, chatRequest } from '../lib/targets.ts'

const SERVER_TIMING = 'server-timing gw'

/** Closed loop on one connection: the latency each hop adds when nothing queues. */
export const oneAtATime: Scenario = {
  name: 'one-at-a-time',
  title: '(a) One request at a time',
  description: 'Closed loop, 1 connection, non-streaming chat completion; latency added by the gateway and by the naive proxy over going direct.',
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 15, perRound: 100 } : { rounds: 50, perRound: 100 }
    const { targets } = await ctx.shared.standard()
    const spec = chatRequest(chatBody({ stream: false, maxTokens: STANDARD_ANSWER_TOKENS }))
    const lanes = targets.map((target) => new Lane(target, { connections: 1 }))
    try {
      await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), topUpRequests(ctx))
      await interleaved(plan.rounds, lanes, async (lane) => {
        await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
        await lane.phase(() => closedLoop(lane.client, spec, plan.perRound, lane.recorder('latency'), lane.recorder(SERVER_TIMING)))
      })
    } finally {
      await closeLanes(lanes)
    }
    const rows = computeAdded(lanes.map((lane) => lane.row('latency', lane.name === 'direct' ? null : 'direct')))
    // The gateway's own account of its time; "added" minus this is spent outside its handler
    // (kernel, HTTP parsing, event loop).
    for (const lane of lanes) if (lane.recorder(SERVER_TIMING).count > 0) rows.push(lane.row(SERVER_TIMING, null))
    const gateway = findRow(rows, 'gateway', 'latency')
    const naive = findRow(rows, 'naive-proxy', 'latency')
    const nginx = optionalRow(rows, 'nginx', 'latency')
    return {
      parameters: { ...plan, topUpRequests: topUpRequests(ctx), connections: 1, bodyBytes: spec.body?.length ?? 0, answerTokens: STANDARD_ANSWER_TOKENS },
      rows,
      checks: [
        check('gateway added p50, one at a time', gateway.added!.p50, '<=', 0.1, 'ms'),
        check('gateway added p99, one at a time', gateway.added!.p99, '<=', 0.3, 'ms'),
        check('gateway p99 at or below naive proxy p99', gateway.latency.p99, '<=', naive.latency.p99, 'ms'),
        ...(nginx === null
          ? []
          : [
              check('gateway added p50 minus nginx added p50, one at a time', gateway.added!.p50 - nginx.added!.p50, '<=', 0.1, 'ms'),
              check('gateway added p99 minus nginx added p99, one at a time', gateway.added!.p99 - nginx.added!.p99, '<=', 0.1, 'ms'),
            ]),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: [...errorNotes(lanes), ...(nginx === null ? [NGINX_MISSING_NOTE] : [])],
    }
  },
}
