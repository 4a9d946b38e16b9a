import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { streamLoop } from '../lib/load.ts'
import { NGINX_MISSING_NOTE } from '../lib/nginx.ts'
import { check, computeAdded, findRow, optionalRow, interleaved, topUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { STANDARD_ANSWER_TOKENS, STANDARD_SIMULATOR } from '../lib/shared-stack.ts'
import { chatBody, chatRequest } from '../lib/targets.ts'

const TOKENS = STANDARD_SIMULATOR.tokens
const INTER_TOKEN_MS = STANDARD_SIMULATOR.interTokenMs

/**
 * Streaming chat completions one at a time: time to first token (first body byte) and to the end
 * of the stream, plus how many socket reads each stream arrived in, which drops if a hop
 * coalesces chunks instead of forwarding each as it comes.
 */
export const streaming: Scenario = {
  name: 'streaming',
  title: '(d) Streaming, one at a time',
  description: `stream: true chat completion of ${TOKENS} chunks ${INTER_TOKEN_MS} ms apart; TTFT and total time added by each hop, and chunk coalescing.`,
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { topUpStreams: 50, rounds: 6, perRound: 5 } : { topUpStreams: 200, rounds: 15, perRound: 10 }
    const { targets } = await ctx.shared.standard()
    const spec = chatRequest(chatBody({ stream: true, maxTokens: TOKENS }))
    const lanes = targets.map((target) => new Lane(target, { connections: 1 }))
    const reads = new Map<string, { reads: number; events: number }>(lanes.map((l) => [l.name, { reads: 0, events: 0 }]))
    try {
      await warmUpLanes(lanes.map((lane) => ({ lane, source: chatRequest(chatBody({ stream: false, maxTokens: STANDARD_ANSWER_TOKENS })) })), topUpRequests(ctx))
      await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), plan.topUpStreams, { stream: true })
      await interleaved(plan.rounds, lanes, async (lane) => {
        // One unrecorded stream: the same cold-start reason as ROUND_REWARM_REQUESTS, at stream cost.
        await streamLoop(lane.client, spec, 1, null)
        const result = await lane.phase(() => streamLoop(lane.client, spec, plan.perRound, { firstByte: lane.recorder('ttft'), total: lane.recorder('total') }))
        const counts = reads.get(lane.name)!
        counts.reads += result.reads
        counts.events += result.events
      })
    } finally {
      await closeLanes(lanes)
    }
    const perResponse = (lane: Lane): Record<string, number> => {
      const ok = lane.requests - lane.errors
      const counts = reads.get(lane.name)!
      return { readsPerStream: counts.reads / ok, eventsPerStream: counts.events / ok }
    }
    const rows = computeAdded(
      lanes.flatMap((lane) => {
        const over = lane.name === 'direct' ? null : 'direct'
        return [lane.row('ttft', over, perResponse(lane)), lane.row('total', over)]
      }),
    )
    const gatewayTtft = findRow(rows, 'gateway', 'ttft')
    const nginxTtft = optionalRow(rows, 'nginx', 'ttft')
    const directReads = perResponse(lanes[0]!).readsPerStream!
    const gatewayReads = perResponse(lanes.find((l) => l.name === 'gateway')!).readsPerStream!
    return {
      parameters: { ...plan, topUpRequests: topUpRequests(ctx), tokens: TOKENS, interTokenMs: INTER_TOKEN_MS },
      rows,
      checks: [
        check('gateway added TTFT p50, streaming', gatewayTtft.added!.p50, '<=', 0.2, 'ms'),
        check('gateway socket reads per stream vs direct (no coalescing)', gatewayReads / directReads, '>=', 0.9, 'ratio'),
        ...(nginxTtft === null ? [] : [check('gateway added TTFT p50 minus nginx added TTFT p50', gatewayTtft.added!.p50 - nginxTtft.added!.p50, '<=', 0.1, 'ms')]),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: [...errorNotes(lanes), ...(nginxTtft === null ? [NGINX_MISSING_NOTE] : [])],
    }
  },
}
