import { closeLanes, errorNotes, Lane, totalErrors } from '../lib/lane.ts'
import { assertWarm, streamLoop } from '../lib/load.ts'
import { check, computeAdded, findRow, interleaved, type Measurement, type Scenario } from '../lib/scenario.ts'
import { chatBody, chatRequest, startStandardTargets } from '../lib/targets.ts'

const TOKENS = 50
const INTER_TOKEN_MS = 1

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
    const plan = ctx.options.quick ? { warmup: 20, rounds: 6, perRound: 5 } : { warmup: 40, rounds: 20, perRound: 10 }
    const { targets } = await startStandardTargets(ctx, { tokens: TOKENS, interTokenMs: INTER_TOKEN_MS })
    const spec = chatRequest(chatBody({ stream: true, maxTokens: TOKENS }))
    const lanes = targets.map((target) => new Lane(target, { connections: 1 }))
    const reads = new Map<string, { reads: number; events: number }>(lanes.map((l) => [l.name, { reads: 0, events: 0 }]))
    try {
      for (const lane of lanes) assertWarm(lane.name, await streamLoop(lane.client, spec, plan.warmup, null))
      await interleaved(plan.rounds, lanes, async (lane) => {
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
    const directReads = perResponse(lanes[0]!).readsPerStream!
    const gatewayReads = perResponse(lanes.find((l) => l.name === 'gateway')!).readsPerStream!
    return {
      parameters: { ...plan, tokens: TOKENS, interTokenMs: INTER_TOKEN_MS },
      rows,
      checks: [
        check('gateway added TTFT p50, streaming', gatewayTtft.added!.p50, '<=', 0.2, 'ms'),
        check('gateway socket reads per stream vs direct (no coalescing)', gatewayReads / directReads, '>=', 0.9, 'ratio'),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: errorNotes(lanes),
    }
  },
}
