import { closeLanes, errorNotes, Lane, totalErrors, warmUpLanes } from '../lib/lane.ts'
import { streamLoop, type RequestSpec } from '../lib/load.ts'
import { check, computeAdded, findRow, interleaved, topUpRequests, type Measurement, type Scenario } from '../lib/scenario.ts'
import { STANDARD_SIMULATOR } from '../lib/shared-stack.ts'
import { chatBody, chatRequest } from '../lib/targets.ts'

const TOKENS = STANDARD_SIMULATOR.tokens
const INTER_TOKEN_MS = STANDARD_SIMULATOR.interTokenMs

/** The streaming scenario's conversation as an Anthropic Messages request. */
function messagesRequest(): RequestSpec {
  const chat = JSON.parse(chatBody({ stream: true, maxTokens: TOKENS })) as { model: string; messages: { role: string; content: string }[]; max_tokens: number; temperature: number }
  const body = {
    model: chat.model,
    system: chat.messages.filter((m) => m.role === 'system').map((m) => m.content).join('\n'),
    messages: chat.messages.filter((m) => m.role !== 'system'),
    max_tokens: chat.max_tokens,
    temperature: chat.temperature,
    stream: true,
  }
  return { method: 'POST', path: '/v1/messages', body: Buffer.from(JSON.stringify(body)), headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' } }
}

/**
 * Streams translated at the edge: the same conversation as the streaming scenario, sent as an
 * Anthropic Messages stream through the gateway (translated to a chat completion stream for the
 * simulator and back, event by event), beside the plain chat stream through the same gateway and
 * the simulator direct. TTFT is the first body byte (`message_start`, written with the first
 * upstream event); socket reads per stream show whether translation coalesces events.
 */
export const anthropicStream: Scenario = {
  name: 'anthropic-stream',
  title: '(d2) Anthropic Messages stream, translated, one at a time',
  description: `POST /v1/messages stream of ${TOKENS} tokens ${INTER_TOKEN_MS} ms apart, translated from the upstream's chat stream; TTFT and total added over direct, beside the untranslated chat stream.`,
  async run(ctx): Promise<Measurement> {
    const plan = ctx.options.quick ? { topUpStreams: 50, rounds: 6, perRound: 5 } : { topUpStreams: 200, rounds: 15, perRound: 10 }
    const { targets } = await ctx.shared.standard()
    const direct = targets.find((t) => t.name === 'direct')!
    const gateway = targets.find((t) => t.name === 'gateway')!
    const chat = chatRequest(chatBody({ stream: true, maxTokens: TOKENS }))
    const messages = messagesRequest()
    const lanes = [
      { lane: new Lane(direct, { connections: 1 }), spec: chat },
      { lane: new Lane(gateway, { connections: 1 }), spec: chat },
      { lane: new Lane({ ...gateway, name: 'gateway-messages' }, { connections: 1 }), spec: messages },
    ]
    const specOf = new Map(lanes.map((l) => [l.lane, l.spec]))
    const reads = new Map<string, { reads: number; events: number }>(lanes.map((l) => [l.lane.name, { reads: 0, events: 0 }]))
    try {
      await warmUpLanes(lanes.map(({ lane, spec }) => ({ lane, source: spec })), plan.topUpStreams, { stream: true })
      await interleaved(plan.rounds, lanes.map((l) => l.lane), async (lane) => {
        const spec = specOf.get(lane)!
        await streamLoop(lane.client, spec, 1, null)
        const result = await lane.phase(() => streamLoop(lane.client, spec, plan.perRound, { firstByte: lane.recorder('ttft'), total: lane.recorder('total') }))
        const counts = reads.get(lane.name)!
        counts.reads += result.reads
        counts.events += result.events
      })
    } finally {
      await closeLanes(lanes.map((l) => l.lane))
    }
    const perResponse = (lane: Lane): Record<string, number> => {
      const ok = lane.requests - lane.errors
      const counts = reads.get(lane.name)!
      return { readsPerStream: counts.reads / ok, eventsPerStream: counts.events / ok }
    }
    const rows = computeAdded(
      lanes.flatMap(({ lane }) => {
        const over = lane.name === 'direct' ? null : 'direct'
        return [lane.row('ttft', over, perResponse(lane)), lane.row('total', over)]
      }),
    )
    const translatedTtft = findRow(rows, 'gateway-messages', 'ttft')
    const chatTtft = findRow(rows, 'gateway', 'ttft')
    const directReads = perResponse(lanes[0]!.lane).readsPerStream!
    const translatedReads = perResponse(lanes[2]!.lane).readsPerStream!
    return {
      parameters: { ...plan, topUpRequests: topUpRequests(ctx), tokens: TOKENS, interTokenMs: INTER_TOKEN_MS },
      rows,
      checks: [
        check('gateway added TTFT p50, translated Messages stream', translatedTtft.added!.p50, '<=', 0.2, 'ms'),
        check('translation cost at TTFT p50 (Messages minus chat, same gateway)', translatedTtft.added!.p50 - chatTtft.added!.p50, '<=', 0.1, 'ms'),
        check('socket reads per translated stream vs direct (no coalescing)', translatedReads / directReads, '>=', 0.9, 'ratio'),
        check('failed requests', totalErrors(lanes.map((l) => l.lane)), '<=', 0, 'requests'),
      ],
      notes: errorNotes(lanes.map((l) => l.lane)),
    }
  },
}
