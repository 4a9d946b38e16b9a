/** `POST /v1/chat/completions`: `chat.completion` bodies and `chat.completion.chunk` streams. */

import {
  type GenConfig,
  type GenRequest,
  type Reply,
  SSE_DONE,
  STREAM_ERROR_EVENT,
  invalidRequest,
  json,
  readChoiceCount,
  readLimit,
  readModel,
  usageJson,
  wantsUsage,
} from './reply.ts'
import { PromptDigest, choiceSeed, completionText, completionTokens } from './text.ts'

const FINGERPRINT = '"system_fingerprint":"fp_velox_sim"'
/** Chat templates add a few tokens per message plus a reply primer. */
const TOKENS_PER_MESSAGE = 3

export function chatCompletion(body: Record<string, unknown>, cfg: GenConfig, req: GenRequest): Reply {
  const model = readModel(body)
  if (typeof model !== 'string') return model
  const messages = body.messages
  if (!Array.isArray(messages) || messages.length === 0) {
    return invalidRequest("'messages' must be a non-empty array", 'messages')
  }
  const n = readChoiceCount(body.n)
  if (typeof n !== 'number') return n
  const limit = readLimit(body.max_completion_tokens ?? body.max_tokens, body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens')
  if (typeof limit !== 'number') return limit

  const digest = new PromptDigest()
  digest.tag(model)
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i]
    if (m === null || typeof m !== 'object') return invalidRequest(`messages[${i}] must be an object`, `messages[${i}]`)
    const role = (m as { role?: unknown }).role
    if (typeof role !== 'string') return invalidRequest(`messages[${i}].role must be a string`, `messages[${i}].role`)
    digest.tag(role)
    digest.value((m as { content?: unknown }).content)
  }
  const promptTokens = digest.promptTokens(TOKENS_PER_MESSAGE * messages.length + 3)
  const count = limit < cfg.tokens ? limit : cfg.tokens
  const finish = limit < cfg.tokens ? '"length"' : '"stop"'
  const id = '"chatcmpl-' + cfg.idTag + req.seq.toString(36) + '"'

  if (body.stream === true) {
    return chatStream(id, model, req.created, digest.hash, n, count, finish, wantsUsage(body) ? promptTokens : -1)
  }

  let choices = ''
  for (let c = 0; c < n; c++) {
    choices += (c === 0 ? '{"index":' : ',{"index":') + c +
      ',"message":{"role":"assistant","content":"' + completionText(choiceSeed(digest.hash, c), count) +
      '","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":' + finish + '}'
  }
  return json(200, '{"id":' + id + ',"object":"chat.completion","created":' + req.created + ',"model":' + model +
    ',"choices":[' + choices + '],"usage":' + usageJson(promptTokens, count * n) + ',"service_tier":"default",' + FINGERPRINT + '}')
}

/** Role chunk per choice, one chunk per token per choice, finish chunk per choice, optional usage, [DONE]. */
function chatStream(id: string, model: string, created: number, hash: number, n: number, count: number,
  finish: string, promptTokens: number): Reply {
  const withUsage = promptTokens >= 0
  const head = 'data: {"id":' + id + ',"object":"chat.completion.chunk","created":' + created + ',"model":' + model +
    ',' + FINGERPRINT + ',"choices":[{"index":'
  const tail = withUsage ? ',"usage":null}\n\n' : '}\n\n'
  const size = n * (count + 2) + (withUsage ? 2 : 1)
  const events = new Array<string>(size)
  const pauses = new Uint8Array(size)
  let e = 0

  for (let c = 0; c < n; c++) {
    events[e++] = head + c + ',"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]' + tail
  }
  const tokens: string[][] = new Array(n)
  for (let c = 0; c < n; c++) tokens[c] = completionTokens(choiceSeed(hash, c), count)
  for (let t = 0; t < count; t++) {
    if (t > 0) pauses[e] = 1
    for (let c = 0; c < n; c++) {
      events[e++] = head + c + ',"delta":{"content":"' + tokens[c]![t] + '"},"logprobs":null,"finish_reason":null}]' + tail
    }
  }
  for (let c = 0; c < n; c++) {
    events[e++] = head + c + ',"delta":{},"logprobs":null,"finish_reason":' + finish + '}]' + tail
  }
  if (withUsage) {
    events[e++] = 'data: {"id":' + id + ',"object":"chat.completion.chunk","created":' + created + ',"model":' + model +
      ',' + FINGERPRINT + ',"choices":[],"usage":' + usageJson(promptTokens, count * n) + '}\n\n'
  }
  events[e++] = SSE_DONE
  return { kind: 'stream', events, pauses, errorEvent: STREAM_ERROR_EVENT }
}
