import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { closedLoop } from '../lib/load.ts'
import { NGINX_MISSING_NOTE } from '../lib/nginx.ts'
import { check, computeAdded, interleaved, optionalRow, ROUND_REWARM_REQUESTS, type Measurement, type ResultRow, type Scenario } from '../lib/scenario.ts'
import { STANDARD_ANSWER_TOKENS } from '../lib/shared-stack.ts'
import { chatRequest, longPromptBody } from '../lib/targets.ts'

/** Request bodies of these sizes: a short prompt, a long document, a long-context request. */
const SIZES = [1_024, 64 * 1_024, 512 * 1_024] as const

/**
 * Cost against request size: one request at a time with 1 KB, 64 KB and 512 KB bodies. The
 * gateway forwards the bytes it received, so what it adds should grow no faster than the body
 * (reading and writing it); a gateway that re-parses or re-serialises bodies grows faster.
 */
export const bodySize: Scenario = {
  name: 'body-size',
  title: 'Request body size',
  description: 'Closed loop, 1 connection, non-streaming chat completions with 1 KB, 64 KB and 512 KB bodies; added latency per size.',
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { rounds: 6, perRound: 50 } : { rounds: 20, perRound: 50 }
    const { targets } = await ctx.shared.standard()
    const rows: ResultRow[] = []
    const lanesBySize = SIZES.map((size) => ({ size, spec: chatRequest(longPromptBody(size, STANDARD_ANSWER_TOKENS)), lanes: targets.map((t) => new Lane(t, { connections: 1 })) }))
    try {
      for (const { spec, lanes } of lanesBySize) {
        await warmUpLanes(lanes.map((lane) => ({ lane, source: spec })), 500)
        await interleaved(plan.rounds, lanes, async (lane) => {
          await closedLoop(lane.client, spec, ROUND_REWARM_REQUESTS, null)
          await lane.phase(() => closedLoop(lane.client, spec, plan.perRound, lane.recorder('latency')))
        })
      }
    } finally {
      for (const { lanes } of lanesBySize) await closeLanes(lanes)
    }
    for (const { size, lanes } of lanesBySize) {
      const sized = computeAdded(lanes.map((lane) => lane.row('latency', lane.name === 'direct' ? null : 'direct')))
      for (const row of sized) rows.push({ ...row, metric: `latency ${size / 1024} KB` })
    }
    const added = (target: string, size: number): number | null => optionalRow(rows, target, `latency ${size / 1024} KB`)?.added?.p50 ?? null
    const g1 = added('gateway', SIZES[0])!
    const g512 = added('gateway', SIZES[2])!
    const n1 = added('nginx', SIZES[0])
    const n512 = added('nginx', SIZES[2])
    const lanes = lanesBySize.flatMap((l) => l.lanes)
    return {
      parameters: { ...plan, sizes: SIZES.join(','), connections: 1 },
      rows,
      checks: [
        // 512x the bytes: linear growth would be at most 512x the 1 KB cost; forwarding bytes should be far below.
        check('gateway added p50 at 512 KB over added p50 at 1 KB (linear would be 512)', g512 / Math.max(g1, 0.001), '<=', 512, 'ratio'),
        ...(n1 === null || n512 === null ? [] : [check('gateway added p50 at 512 KB minus nginx added p50 at 512 KB', g512 - n512, '<=', 0.5, 'ms')]),
        check('failed requests', totalErrors(lanes), '<=', 0, 'requests'),
      ],
      notes: [...errorNotes(lanes), ...(n1 === null ? [NGINX_MISSING_NOTE] : [])],
    }
  },
}
