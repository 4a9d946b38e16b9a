/**
 * Playing a reply out at the pace of the vLLM-like engine: a stream's headers go out at once, its
 * events as the engine generates each token; a JSON body when the last token is done. Also the
 * engine's `/metrics`.
 */
import type { EngineSink, VllmEngine } from './engine.ts'
import { enginePrompt } from './prompt.ts'
import { errorJson, type Reply, type StreamReply } from './reply.ts'
import { SSE_HEADERS, type SimResponse, writeJson } from './transport.ts'

class ResponseSink implements EngineSink {
  readonly res: SimResponse
  readonly stream: StreamReply | null
  readonly body: string | Buffer

  constructor(res: SimResponse, reply: Reply) {
    this.res = res
    this.stream = reply.kind === 'stream' ? reply : null
    this.body = reply.kind === 'json' ? reply.body : ''
  }

  onToken(index: number, total: number): void {
    const res = this.res
    if (res.gone) return
    const last = index + 1 >= total
    if (last) res.engineRequest = null
    const stream = this.stream
    if (stream === null) {
      if (last) writeJson(res, 200, this.body)
      return
    }
    const events = stream.events
    const pauses = stream.pauses
    let i = res.next
    // One token's events: up to the next inter-token pause, or everything left after the last token.
    do {
      res.write(events[i]!)
      i++
    } while (i < events.length && (last || pauses[i] !== 1))
    res.next = i
    if (i >= events.length) res.end()
  }
}

/** Tokens the reply holds per choice: one plus the pauses between them in a stream. */
function outputTokens(reply: Reply, params: Record<string, unknown>, configured: number): number {
  if (reply.kind === 'stream') {
    let n = 1
    for (let i = 0; i < reply.pauses.length; i++) n += reply.pauses[i]!
    return n
  }
  const limit = params.max_completion_tokens ?? params.max_tokens
  return typeof limit === 'number' && limit >= 1 && limit < configured ? limit : Math.max(1, configured)
}

export function deliverFromEngine(res: SimResponse, engine: VllmEngine, reply: Reply, params: Record<string, unknown>, configuredTokens: number): void {
  const prompt = enginePrompt(params, engine.options.blockTokens)
  const sink = new ResponseSink(res, reply)
  const req = engine.submit(prompt, outputTokens(reply, params, configuredTokens), sink)
  if (req === null) {
    const max = engine.options.kvBlocks * engine.options.blockTokens
    writeJson(res, 400, errorJson(`This model's KV cache holds ${max} tokens; the prompt (${prompt.tokens} tokens) plus the output does not fit.`, 'invalid_request_error', 'messages', 'context_length_exceeded'))
    return
  }
  res.engineRequest = req
  res.next = 0
  if (reply.kind === 'stream') {
    res.writeHead(200, SSE_HEADERS)
    res.flushHeaders()
  }
}

export function writeEngineMetrics(res: SimResponse, engine: VllmEngine, model: string): void {
  const body = engine.metricsText(model)
  res.writeHead(200, ['content-type', 'text/plain; version=0.0.4; charset=utf-8', 'content-length', String(Buffer.byteLength(body))])
  res.end(body)
}
