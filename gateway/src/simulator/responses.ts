/** `POST /v1/responses`: Responses API objects and their named-event streams. */

import {
  type GenConfig,
  type GenRequest,
  type Reply,
  invalidRequest,
  json,
  readLimit,
  readModel,
} from './reply.ts'
import { PromptDigest, choiceSeed, completionText, completionTokens } from './text.ts'

const STREAM_ERROR_EVENT = 'event: error\ndata: ' + JSON.stringify({
  type: 'error',
  sequence_number: 0,
  code: 'server_error',
  message: 'The simulated model failed while generating',
  param: null,
}) + '\n\n'

function event(type: string, seq: number, rest: string): string {
  return 'event: ' + type + '\ndata: {"type":"' + type + '","sequence_number":' + seq + rest + '}\n\n'
}

function usage(input: number, output: number): string {
  return '{"input_tokens":' + input + ',"input_tokens_details":{"cached_tokens":0},"output_tokens":' + output +
    ',"output_tokens_details":{"reasoning_tokens":0},"total_tokens":' + (input + output) + '}'
}

export function createResponse(body: Record<string, unknown>, cfg: GenConfig, req: GenRequest): Reply {
  const model = readModel(body)
  if (typeof model !== 'string') return model
  const input = body.input
  if (typeof input !== 'string' && !(Array.isArray(input) && input.length > 0)) {
    return invalidRequest("'input' must be a string or a non-empty array of input items", 'input')
  }
  const limit = readLimit(body.max_output_tokens, 'max_output_tokens')
  if (typeof limit !== 'number') return limit

  const digest = new PromptDigest()
  digest.tag(model)
  if (typeof body.instructions === 'string') digest.text(body.instructions)
  digest.value(input)
  const inputTokens = digest.promptTokens(Array.isArray(input) ? 3 * input.length + 3 : 3)
  const count = limit < cfg.tokens ? limit : cfg.tokens
  const truncated = limit < cfg.tokens
  const suffix = cfg.idTag + req.seq.toString(36)
  const respId = '"resp_' + suffix + '"'
  const msgId = '"msg_' + suffix + '"'
  const seed = choiceSeed(digest.hash, 0)

  const instructions = typeof body.instructions === 'string' ? JSON.stringify(body.instructions) : 'null'
  const maxOut = Number.isFinite(limit) ? String(limit) : 'null'
  const status = truncated ? '"incomplete"' : '"completed"'
  const incomplete = truncated ? '{"reason":"max_output_tokens"}' : 'null'
  /** Every field of the response object except status, output and usage, which change as it runs. */
  const fixed = '"id":' + respId + ',"object":"response","created_at":' + req.created + ',"model":' + model +
    ',"instructions":' + instructions + ',"max_output_tokens":' + maxOut +
    ',"parallel_tool_calls":true,"previous_response_id":null,"temperature":1,"top_p":1,"tool_choice":"auto","tools":[]' +
    ',"text":{"format":{"type":"text"}},"truncation":"disabled","error":null'
  const message = (text: string, itemStatus: string): string =>
    '{"type":"message","id":' + msgId + ',"status":' + itemStatus + ',"role":"assistant","content":[' +
    '{"type":"output_text","text":"' + text + '","annotations":[]}]}'
  const finished = (text: string): string =>
    '{' + fixed + ',"status":' + status + ',"incomplete_details":' + incomplete +
    ',"output":[' + message(text, status) + '],"usage":' + usage(inputTokens, count) + '}'

  if (body.stream !== true) return json(200, finished(completionText(seed, count)))

  const tokens = completionTokens(seed, count)
  const size = count + 8
  const events = new Array<string>(size)
  const pauses = new Uint8Array(size)
  const running = '{' + fixed + ',"status":"in_progress","incomplete_details":null,"output":[],"usage":null}'
  const item = ',"item_id":' + msgId + ',"output_index":0,"content_index":0'
  let e = 0
  events[e] = event('response.created', e, ',"response":' + running); e++
  events[e] = event('response.in_progress', e, ',"response":' + running); e++
  events[e] = event('response.output_item.added', e,
    ',"output_index":0,"item":{"type":"message","id":' + msgId + ',"status":"in_progress","role":"assistant","content":[]}'); e++
  events[e] = event('response.content_part.added', e, item + ',"part":{"type":"output_text","text":"","annotations":[]}'); e++
  for (let t = 0; t < count; t++) {
    if (t > 0) pauses[e] = 1
    events[e] = event('response.output_text.delta', e, item + ',"delta":"' + tokens[t] + '","logprobs":[]'); e++
  }
  const text = tokens.join('')
  events[e] = event('response.output_text.done', e, item + ',"text":"' + text + '","logprobs":[]'); e++
  events[e] = event('response.content_part.done', e, item + ',"part":{"type":"output_text","text":"' + text + '","annotations":[]}'); e++
  events[e] = event('response.output_item.done', e, ',"output_index":0,"item":' + message(text, status)); e++
  events[e] = event(truncated ? 'response.incomplete' : 'response.completed', e, ',"response":' + finished(text)); e++
  return { kind: 'stream', events, pauses, errorEvent: STREAM_ERROR_EVENT }
}
