/**
 * Amazon Bedrock's Converse wire format, so `kind: bedrock` runs offline:
 * `POST /model/{modelId}/converse` (a Converse answer) and `/model/{modelId}/converse-stream`
 * (an AWS event stream: messageStart, contentBlockStart/Delta/Stop, messageStop, metadata, with
 * Bedrock's `p` padding field), errors as Bedrock sends them (`{"message"}` with
 * `x-amzn-errortype`), and, when the simulator is given AWS credentials, SigV4 verification as
 * AWS does it: an unknown key, a request more than 15 minutes old or a signature that does not
 * match gets 403.
 *
 * The answer is the simulator's deterministic chat completion for the same conversation,
 * converted here (not with the gateway's translator), so the gateway's Converse translation is
 * checked against an independent reading of the format.
 */
import aws4 from 'aws4'
import { encodeMessage, EVENT_STREAM_CONTENT_TYPE } from '../protocols/bedrock/event-stream.ts'
import { chatCompletion } from './chat.ts'
import { chatWithTools } from './chat-tools.ts'
import { type GenConfig, type GenRequest, type Reply } from './reply.ts'

type Json = Record<string, unknown>

export interface SimAwsCredentials {
  readonly accessKeyId: string
  readonly secretAccessKey: string
  /** When set, requests must carry it as `x-amz-security-token`. */
  readonly sessionToken?: string
}

const CONVERSE = /^\/model\/([^/]+)\/(converse|converse-stream)$/
const MAX_CLOCK_SKEW_MS = 15 * 60_000
/** Bedrock pads event payloads to hide token lengths; clients ignore the field. */
const PADDING = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0'

export function isBedrockPath(path: string): boolean {
  return path.startsWith('/model/')
}

export function bedrockRoute(path: string): { model: string; stream: boolean } | null {
  const m = CONVERSE.exec(path)
  if (m === null) return null
  try {
    return { model: decodeURIComponent(m[1]!), stream: m[2] === 'converse-stream' }
  } catch {
    return null
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A Bedrock error answer. */
export function bedrockError(status: number, type: string, message: string): Reply {
  return { kind: 'json', status, body: JSON.stringify({ message }), headers: ['x-amzn-errortype', `${type}:http://internal.amazon.com/coral/com.amazon.bedrock/`] }
}

/** The type Bedrock names for a status the fault injector chose. */
export function bedrockFaultType(status: number): string {
  if (status === 429) return 'ThrottlingException'
  if (status === 503) return 'ServiceUnavailableException'
  if (status >= 500) return 'InternalServerException'
  if (status === 403) return 'AccessDeniedException'
  if (status === 404) return 'ResourceNotFoundException'
  return 'ValidationException'
}

/**
 * SigV4 as Bedrock checks it: the scope's key, the date, then the signature recomputed over the
 * headers the request says it signed. Returns an error reply, or null when the request passes.
 */
export function verifySignature(creds: SimAwsCredentials, method: string, url: string, headers: Readonly<Record<string, string | string[] | undefined>>, body: Buffer, now: number): Reply | null {
  const auth = headers.authorization
  if (typeof auth !== 'string') return bedrockError(403, 'AccessDeniedException', 'Missing Authentication Token')
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth)
  if (m === null) return bedrockError(403, 'IncompleteSignatureException', 'Authorization header requires Credential, SignedHeaders and Signature')
  const [, keyId, , region, service, signedHeaders] = m as unknown as [string, string, string, string, string, string, string]
  if (keyId !== creds.accessKeyId) return bedrockError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.')
  if (creds.sessionToken !== undefined && headers['x-amz-security-token'] !== creds.sessionToken) return bedrockError(403, 'UnrecognizedClientException', 'The security token included in the request is invalid.')
  const date = headers['x-amz-date']
  const at = typeof date === 'string' ? Date.parse(date.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z')) : NaN
  if (!Number.isFinite(at)) return bedrockError(403, 'IncompleteSignatureException', 'X-Amz-Date is missing or invalid')
  if (Math.abs(now - at) > MAX_CLOCK_SKEW_MS) return bedrockError(403, 'InvalidSignatureException', 'Signature expired')
  const names = signedHeaders.split(';')
  if (!names.includes('host') || !names.includes('x-amz-date')) return bedrockError(403, 'IncompleteSignatureException', 'host and x-amz-date must be signed')
  const signed: Record<string, string> = {}
  for (const name of names) {
    const v = headers[name]
    signed[name] = Array.isArray(v) ? v.join(',') : (v ?? '')
  }
  // Exactly the headers it signed (doNotModifyHeaders), at the date it signed them.
  const signer = new aws4.RequestSigner({ host: signed.host, path: url, method, service, region, body, headers: signed, doNotModifyHeaders: true }, creds)
  signer.datetime = date as string
  const expected = signer.sign().headers as Record<string, string>
  if (expected.Authorization !== auth) {
    return bedrockError(403, 'InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.')
  }
  return null
}

/** Converse request -> the chat request the simulator answers (the simulator's own reading). */
function converseAsChat(body: Json, model: string, stream: boolean): Json | string {
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'messages: at least one message is required'
  const messages: Json[] = []
  if (Array.isArray(body.system)) {
    const text = body.system.map((b) => (isObject(b) && typeof b.text === 'string' ? b.text : '')).join('\n')
    if (text !== '') messages.push({ role: 'system', content: text })
  }
  let last = ''
  for (const [i, m] of body.messages.entries()) {
    if (!isObject(m) || (m.role !== 'user' && m.role !== 'assistant') || !Array.isArray(m.content)) return `messages.${i}: a role (user or assistant) and content blocks are required`
    if (m.role === last) return `messages.${i}: A conversation must alternate between user and assistant roles.`
    last = m.role
    let text = ''
    const toolCalls: Json[] = []
    for (const b of m.content) {
      if (!isObject(b)) continue
      if (typeof b.text === 'string') text += b.text
      else if (isObject(b.image)) text += '[image]'
      else if (isObject(b.toolUse)) toolCalls.push({ id: b.toolUse.toolUseId, type: 'function', function: { name: b.toolUse.name, arguments: JSON.stringify(b.toolUse.input ?? {}) } })
      else if (isObject(b.toolResult)) {
        const content = Array.isArray(b.toolResult.content) ? b.toolResult.content.map((c) => (isObject(c) && typeof c.text === 'string' ? c.text : JSON.stringify(c))).join('') : ''
        messages.push({ role: 'tool', tool_call_id: b.toolResult.toolUseId, content })
      }
    }
    if (toolCalls.length > 0 && m.role === 'assistant') messages.push({ role: 'assistant', content: text === '' ? null : text, tool_calls: toolCalls })
    else if (text !== '' || m.role === 'assistant') messages.push({ role: m.role, content: text })
  }
  const inference = isObject(body.inferenceConfig) ? body.inferenceConfig : {}
  const chat: Json = { model, messages }
  if (typeof inference.maxTokens === 'number') chat.max_tokens = inference.maxTokens
  if (stream) {
    chat.stream = true
    chat.stream_options = { include_usage: true }
  }
  const toolConfig = isObject(body.toolConfig) ? body.toolConfig : null
  if (toolConfig !== null && Array.isArray(toolConfig.tools)) {
    chat.tools = toolConfig.tools.filter(isObject).map((t) => {
      const spec = isObject(t.toolSpec) ? t.toolSpec : {}
      const schema = isObject(spec.inputSchema) && isObject(spec.inputSchema.json) ? spec.inputSchema.json : {}
      return { type: 'function', function: { name: spec.name, description: spec.description, parameters: schema } }
    })
    const choice = isObject(toolConfig.toolChoice) ? toolConfig.toolChoice : null
    if (choice !== null && isObject(choice.any)) chat.tool_choice = 'required'
    else if (choice !== null && isObject(choice.tool)) chat.tool_choice = { type: 'function', function: { name: choice.tool.name } }
  }
  return chat
}

function stopReason(finish: unknown): string {
  if (finish === 'length') return 'max_tokens'
  if (finish === 'tool_calls') return 'tool_use'
  if (finish === 'content_filter') return 'content_filtered'
  return 'end_turn'
}

export function converse(body: Json, model: string, stream: boolean, cfg: GenConfig, req: GenRequest): Reply {
  const chat = converseAsChat(body, model, stream)
  if (typeof chat === 'string') return bedrockError(400, 'ValidationException', chat)
  const reply = chatWithTools(chat, cfg, req) ?? chatCompletion(chat, cfg, req)
  const requestId = `${cfg.idTag}-${req.seq.toString(36)}`
  if (reply.kind === 'json') {
    if (reply.status !== 200) return bedrockError(reply.status, bedrockFaultType(reply.status), (JSON.parse(String(reply.body)) as { error?: { message?: string } }).error?.message ?? 'error')
    const c = JSON.parse(String(reply.body)) as { choices: { message: { content: string | null; tool_calls?: { id: string; function: { name: string; arguments: string } }[] }; finish_reason: string }[]; usage: { prompt_tokens: number; completion_tokens: number } }
    const choice = c.choices[0]!
    const content: Json[] = []
    if (choice.message.content) content.push({ text: choice.message.content })
    for (const tc of choice.message.tool_calls ?? []) content.push({ toolUse: { toolUseId: tc.id, name: tc.function.name, input: JSON.parse(tc.function.arguments) as unknown } })
    const answer = {
      output: { message: { role: 'assistant', content } },
      stopReason: stopReason(choice.finish_reason),
      usage: { inputTokens: c.usage.prompt_tokens, outputTokens: c.usage.completion_tokens, totalTokens: c.usage.prompt_tokens + c.usage.completion_tokens },
      metrics: { latencyMs: 1 },
    }
    return { kind: 'json', status: 200, body: JSON.stringify(answer), headers: ['x-amzn-requestid', requestId] }
  }
  // The chat stream's events, one Bedrock message (or a few) per chat chunk, same pacing.
  const events: Buffer[] = []
  const pauses: number[] = []
  let block = -1
  let blockIsText = false
  let finish: unknown = null
  const closeBlock = (out: Buffer[]): void => {
    if (block >= 0) out.push(encodeMessage('event', 'contentBlockStop', JSON.stringify({ contentBlockIndex: block, p: PADDING.slice(0, 8) })))
  }
  for (let i = 0; i < reply.events.length; i++) {
    const data = String(reply.events[i]).replace(/^data: /, '').trim()
    if (data === '[DONE]') continue
    const chunk = JSON.parse(data) as { choices: { delta: { role?: string; content?: string; tool_calls?: { index: number; id?: string; function: { name?: string; arguments?: string } }[] }; finish_reason: string | null }[]; usage?: { prompt_tokens: number; completion_tokens: number } | null }
    const out: Buffer[] = []
    const choice = chunk.choices[0]
    if (choice !== undefined) {
      const d = choice.delta
      if (d.role !== undefined) out.push(encodeMessage('event', 'messageStart', JSON.stringify({ role: 'assistant', p: PADDING.slice(0, 4) })))
      if (typeof d.content === 'string' && d.content !== '') {
        if (!blockIsText) {
          closeBlock(out)
          block++
          blockIsText = true
        }
        out.push(encodeMessage('event', 'contentBlockDelta', JSON.stringify({ contentBlockIndex: block, delta: { text: d.content }, p: PADDING.slice(0, 1 + (i % 40)) })))
      }
      for (const tc of d.tool_calls ?? []) {
        if (tc.id !== undefined) {
          closeBlock(out)
          block++
          blockIsText = false
          out.push(encodeMessage('event', 'contentBlockStart', JSON.stringify({ contentBlockIndex: block, start: { toolUse: { toolUseId: tc.id, name: tc.function.name } }, p: PADDING.slice(0, 6) })))
        }
        if (tc.function.arguments) out.push(encodeMessage('event', 'contentBlockDelta', JSON.stringify({ contentBlockIndex: block, delta: { toolUse: { input: tc.function.arguments } }, p: PADDING.slice(0, 3) })))
      }
      if (choice.finish_reason !== null) finish = choice.finish_reason
    }
    if (chunk.usage) {
      closeBlock(out)
      block = -1
      out.push(encodeMessage('event', 'messageStop', JSON.stringify({ stopReason: stopReason(finish), p: PADDING.slice(0, 10) })))
      const usage = { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens, totalTokens: chunk.usage.prompt_tokens + chunk.usage.completion_tokens }
      out.push(encodeMessage('event', 'metadata', JSON.stringify({ usage, metrics: { latencyMs: 1 }, p: PADDING.slice(0, 12) })))
    }
    if (out.length === 0) continue
    events.push(out.length === 1 ? out[0]! : Buffer.concat(out))
    pauses.push(reply.pauses[i]!)
  }
  return {
    kind: 'stream',
    events,
    pauses: Uint8Array.from(pauses),
    errorEvent: encodeMessage('exception', 'modelStreamErrorException', JSON.stringify({ message: 'The simulated model failed while generating', originalStatusCode: 500 })),
    headers: ['content-type', EVENT_STREAM_CONTENT_TYPE, 'x-amzn-requestid', requestId],
  }
}
