/** `POST /v1/completions`: legacy `text_completion` bodies and streams. */

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

/** `prompt` may be a string, strings, one token array or token arrays; each prompt gets `n` choices. */
function splitPrompts(prompt: unknown): unknown[] | null {
  if (typeof prompt === 'string') return [prompt]
  if (!Array.isArray(prompt) || prompt.length === 0) return null
  if (typeof prompt[0] === 'number') return [prompt]
  for (const p of prompt) {
    if (typeof p !== 'string' && !Array.isArray(p)) return null
  }
  return prompt
}

export function textCompletion(body: Record<string, unknown>, cfg: GenConfig, req: GenRequest): Reply {
  const model = readModel(body)
  if (typeof model !== 'string') return model
  const prompts = splitPrompts(body.prompt)
  if (prompts === null) {
    return invalidRequest("'prompt' must be a string, an array of strings, or an array of token arrays", 'prompt')
  }
  const n = readChoiceCount(body.n)
  if (typeof n !== 'number') return n
  const limit = readLimit(body.max_tokens, 'max_tokens')
  if (typeof limit !== 'number') return limit

  const hashes = new Array<number>(prompts.length)
  let promptTokens = 0
  for (let p = 0; p < prompts.length; p++) {
    const digest = new PromptDigest()
    digest.tag(model)
    const prompt = prompts[p]
    if (typeof prompt === 'string') digest.text(prompt)
    else digest.tokenIds(prompt as unknown[])
    hashes[p] = digest.hash
    promptTokens += digest.promptTokens(0)
  }
  const count = limit < cfg.tokens ? limit : cfg.tokens
  const finish = limit < cfg.tokens ? '"length"' : '"stop"'
  const id = '"cmpl-' + cfg.idTag + req.seq.toString(36) + '"'
  const choiceCount = prompts.length * n
  const seedOf = (index: number): number => choiceSeed(hashes[Math.floor(index / n)]!, index % n)

  if (body.stream === true) {
    const withUsage = wantsUsage(body)
    const head = 'data: {"id":' + id + ',"object":"text_completion","created":' + req.created + ',"model":' + model +
      ',' + FINGERPRINT + ',"choices":[{"text":"'
    const size = choiceCount * (count + 1) + (withUsage ? 2 : 1)
    const events = new Array<string>(size)
    const pauses = new Uint8Array(size)
    const tokens: string[][] = new Array(choiceCount)
    for (let c = 0; c < choiceCount; c++) tokens[c] = completionTokens(seedOf(c), count)
    let e = 0
    for (let t = 0; t < count; t++) {
      if (t > 0) pauses[e] = 1
      for (let c = 0; c < choiceCount; c++) {
        events[e++] = head + tokens[c]![t] + '","index":' + c + ',"logprobs":null,"finish_reason":null}]}\n\n'
      }
    }
    for (let c = 0; c < choiceCount; c++) {
      events[e++] = head + '","index":' + c + ',"logprobs":null,"finish_reason":' + finish + '}]}\n\n'
    }
    if (withUsage) {
      events[e++] = 'data: {"id":' + id + ',"object":"text_completion","created":' + req.created + ',"model":' + model +
        ',' + FINGERPRINT + ',"choices":[],"usage":' + usageJson(promptTokens, count * choiceCount) + '}\n\n'
    }
    events[e++] = SSE_DONE
    return { kind: 'stream', events, pauses, errorEvent: STREAM_ERROR_EVENT }
  }

  let choices = ''
  for (let c = 0; c < choiceCount; c++) {
    choices += (c === 0 ? '{"text":"' : ',{"text":"') + completionText(seedOf(c), count) +
      '","index":' + c + ',"logprobs":null,"finish_reason":' + finish + '}'
  }
  return json(200, '{"id":' + id + ',"object":"text_completion","created":' + req.created + ',"model":' + model +
    ',' + FINGERPRINT + ',"choices":[' + choices + '],"usage":' + usageJson(promptTokens, count * choiceCount) + '}')
}
