/**
 * The chat features plain completions do not exercise, as vLLM serves them: tool calls (when the
 * request offers tools and the conversation does not end with a tool result) and reasoning
 * (`chat_template_kwargs.enable_thinking`, streamed as `reasoning_content` before the answer).
 * Other chat requests return null and go to `chat.ts`. Deterministic like the rest.
 *
 * Also `POST /tokenize` (vLLM's): the prompt's token count as the chat endpoint would count it.
 */
import {
  type GenConfig,
  type GenRequest,
  type JsonReply,
  type Reply,
  SSE_DONE,
  STREAM_ERROR_EVENT,
  invalidRequest,
  json,
  readLimit,
  readModel,
  sseData,
  usageJson,
  wantsUsage,
} from './reply.ts'
import { PromptDigest, choiceSeed, completionText, completionTokens } from './text.ts'

type Json = Record<string, unknown>

const FINGERPRINT = '"system_fingerprint":"fp_velox_sim"'
const TOKENS_PER_MESSAGE = 3

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** The tool the simulated model calls, or null when it answers in text. */
function chosenTool(body: Json): Json | null {
  const tools = body.tools
  if (!Array.isArray(tools) || tools.length === 0 || body.tool_choice === 'none') return null
  const messages = body.messages as unknown[]
  const last = messages[messages.length - 1]
  // After a tool result the model answers in words.
  if (isObject(last) && last.role === 'tool') return null
  const choice = body.tool_choice
  const wanted = isObject(choice) && isObject(choice.function) ? choice.function.name : undefined
  if (typeof wanted === 'string') {
    const named = tools.find((t) => isObject(t) && isObject(t.function) && t.function.name === wanted)
    if (named !== undefined) return (named as Json).function as Json
  }
  const first = tools[0]
  return isObject(first) && isObject(first.function) ? first.function as Json : null
}

/** Arguments that satisfy the schema's required properties with deterministic values. */
function toolArguments(fn: Json, seed: number): string {
  const params = isObject(fn.parameters) ? fn.parameters : {}
  const props = isObject(params.properties) ? params.properties : {}
  const required = Array.isArray(params.required) ? params.required.filter((k): k is string => typeof k === 'string') : Object.keys(props)
  const args: Json = {}
  let i = 0
  for (const key of required) {
    const prop = isObject(props[key]) ? props[key] as Json : {}
    const word = completionText(seed + i++, 1).toLowerCase()
    args[key] = prop.type === 'number' || prop.type === 'integer' ? (seed + i) % 100 : prop.type === 'boolean' ? true : word
  }
  return JSON.stringify(args)
}

function thinkingOn(body: Json): boolean {
  const kwargs = body.chat_template_kwargs
  return isObject(kwargs) && kwargs.enable_thinking === true
}

/** The prompt digest and token count, as `chat.ts` computes them. */
function digestOf(body: Json, model: string): { digest: PromptDigest; promptTokens: number } | JsonReply {
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) return invalidRequest("'messages' must be a non-empty array", 'messages')
  const digest = new PromptDigest()
  digest.tag(model)
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i]
    if (!isObject(m) || typeof m.role !== 'string') return invalidRequest(`messages[${i}] must be an object with a role`, `messages[${i}]`)
    digest.tag(m.role)
    digest.value(m.content)
  }
  return { digest, promptTokens: digest.promptTokens(TOKENS_PER_MESSAGE * messages.length + 3) }
}

export function chatWithTools(body: Json, cfg: GenConfig, req: GenRequest): Reply | null {
  const thinking = thinkingOn(body)
  if (!thinking && (!Array.isArray(body.tools) || body.tools.length === 0)) return null
  const model = readModel(body)
  if (typeof model !== 'string') return model
  const d = digestOf(body, model)
  if (!('digest' in d)) return d
  const limit = readLimit(body.max_completion_tokens ?? body.max_tokens, body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens')
  if (typeof limit !== 'number') return limit
  const tool = Array.isArray(body.messages) ? chosenTool(body) : null
  const seed = choiceSeed(d.digest.hash, 0)
  const reasoningCount = thinking ? Math.max(1, cfg.tokens >> 1) : 0
  const count = Math.min(limit, cfg.tokens)
  const id = '"chatcmpl-' + cfg.idTag + req.seq.toString(36) + '"'
  const args = tool !== null ? toolArguments(tool, seed) : ''
  const callId = 'call_' + cfg.idTag + req.seq.toString(36)
  const finish = tool !== null ? 'tool_calls' : limit < cfg.tokens ? 'length' : 'stop'
  const completion = (tool !== null ? 1 : count) + reasoningCount

  if (body.stream === true) {
    return stream(id, model, req.created, seed, reasoningCount, tool !== null ? 0 : count, tool, callId, args, finish, wantsUsage(body) ? d.promptTokens : -1, completion)
  }
  const message: Json = { role: 'assistant', content: tool !== null ? null : completionText(seed, count) }
  if (thinking) message.reasoning_content = completionText(seed ^ 0x5bd1e995, reasoningCount)
  if (tool !== null) message.tool_calls = [{ id: callId, type: 'function', function: { name: tool.name, arguments: args } }]
  return json(200, '{"id":' + id + ',"object":"chat.completion","created":' + req.created + ',"model":' + model +
    ',"choices":[{"index":0,"message":' + JSON.stringify(message) + ',"logprobs":null,"finish_reason":"' + finish + '"}],"usage":' +
    usageJson(d.promptTokens, completion) + ',' + FINGERPRINT + '}')
}

function stream(id: string, model: string, created: number, seed: number, reasoningCount: number, count: number,
  tool: Json | null, callId: string, args: string, finish: string, promptTokens: number, completion: number): Reply {
  const head = 'data: {"id":' + id + ',"object":"chat.completion.chunk","created":' + created + ',"model":' + model + ',' + FINGERPRINT + ',"choices":[{"index":0,"delta":'
  const tail = ',"logprobs":null,"finish_reason":null}]}\n\n'
  const events: string[] = [head + '{"role":"assistant","content":""}' + tail]
  const pauses: number[] = [0]
  for (const t of completionTokens(seed ^ 0x5bd1e995, reasoningCount)) {
    events.push(head + '{"reasoning_content":' + JSON.stringify(t) + '}' + tail)
    pauses.push(1)
  }
  for (const t of completionTokens(seed, count)) {
    events.push(head + '{"content":' + JSON.stringify(t) + '}' + tail)
    pauses.push(1)
  }
  if (tool !== null) {
    events.push(head + '{"tool_calls":[{"index":0,"id":"' + callId + '","type":"function","function":{"name":' + JSON.stringify(tool.name) + ',"arguments":""}}]}' + tail)
    pauses.push(1)
    // Arguments arrive in pieces, as a model writes them.
    const cut = args.length >> 1
    for (const piece of [args.slice(0, cut), args.slice(cut)]) {
      if (piece === '') continue
      events.push(head + '{"tool_calls":[{"index":0,"function":{"arguments":' + JSON.stringify(piece) + '}}]}' + tail)
      pauses.push(1)
    }
  }
  events.push(head + '{},"logprobs":null,"finish_reason":"' + finish + '"}]}\n\n')
  pauses.push(0)
  if (promptTokens >= 0) {
    events.push(sseData('{"id":' + id + ',"object":"chat.completion.chunk","created":' + created + ',"model":' + model + ',' + FINGERPRINT + ',"choices":[],"usage":' + usageJson(promptTokens, completion) + '}'))
    pauses.push(0)
  }
  events.push(SSE_DONE)
  pauses.push(0)
  pauses[1] = 0 // the first token follows the time-to-first-token delay alone
  return { kind: 'stream', events, pauses: Uint8Array.from(pauses), errorEvent: STREAM_ERROR_EVENT }
}

/** vLLM's `POST /tokenize` for chat messages: `{count, max_model_len, tokens}`. */
export function tokenize(body: Json): Reply {
  const model = readModel(body)
  if (typeof model !== 'string') return model
  let count: number
  if (typeof body.prompt === 'string') {
    count = Math.ceil(body.prompt.length / 4)
  } else {
    const d = digestOf(body, model)
    if (!('digest' in d)) return d
    count = d.promptTokens
  }
  const tokens = new Array<number>(count)
  for (let i = 0; i < count; i++) tokens[i] = (i * 2654435761) % 50_000
  return json(200, '{"count":' + count + ',"max_model_len":32768,"tokens":' + JSON.stringify(tokens) + '}')
}
