/**
 * The request listener: route, read the body, apply the arrival faults, build the reply and hand
 * it to the transport. Faults apply to `/v1/*` only; `/health` and `/_sim/*` always answer, so a
 * test can still drive and observe a simulator it has broken.
 */

import { chatCompletion } from './chat.ts'
import { chatWithTools, tokenize } from './chat-tools.ts'
import { textCompletion } from './completions.ts'
import type { SimCore } from './core.ts'
import { embeddings } from './embeddings.ts'
import { type Faults, NO_FAULTS } from './faults.ts'
import { type GenRequest, type JsonReply, type Reply, errorJson, invalidRequest, json, notFound } from './reply.ts'
import { createResponse } from './responses.ts'
import { anthropicFault, isMessagesPath, messages, openAIPath } from './wire-formats.ts'
import { bedrockError, bedrockFaultType, bedrockRoute, converse, isBedrockPath, verifySignature } from './bedrock.ts'
import { type SimRequest, type SimResponse, cancelTimer, deliverJson, deliverStream, resetConnection, writeJson } from './transport.ts'
import { deliverFromEngine, writeEngineMetrics } from './vllm-transport.ts'

const NOT_FOUND = 0
const METHOD_NOT_ALLOWED = 1
const HEALTH = 2
const MODELS = 3
const MODEL = 4
const CHAT = 5
const COMPLETIONS = 6
const EMBEDDINGS = 7
const RESPONSES = 8
const SIM_FAULTS = 9
const SIM_STATS = 10
const METRICS = 11
const TOKENIZE = 12
const MESSAGES = 13
const COUNT_TOKENS = 14
const CONVERSE = 15

const MAX_BODY_BYTES = 32 * 1024 * 1024

function routeOf(method: string, path: string): number {
  switch (path) {
    case '/v1/chat/completions': return method === 'POST' ? CHAT : METHOD_NOT_ALLOWED
    case '/v1/completions': return method === 'POST' ? COMPLETIONS : METHOD_NOT_ALLOWED
    case '/v1/embeddings': return method === 'POST' ? EMBEDDINGS : METHOD_NOT_ALLOWED
    case '/v1/responses': return method === 'POST' ? RESPONSES : METHOD_NOT_ALLOWED
    case '/v1/models': return method === 'GET' ? MODELS : METHOD_NOT_ALLOWED
    case '/tokenize': return method === 'POST' ? TOKENIZE : METHOD_NOT_ALLOWED
    case '/v1/messages': return method === 'POST' ? MESSAGES : METHOD_NOT_ALLOWED
    case '/v1/messages/count_tokens': return method === 'POST' ? COUNT_TOKENS : METHOD_NOT_ALLOWED
    case '/health': return method === 'GET' ? HEALTH : METHOD_NOT_ALLOWED
    case '/metrics': return method === 'GET' ? METRICS : METHOD_NOT_ALLOWED
    case '/_sim/faults': return method === 'GET' || method === 'POST' || method === 'DELETE' ? SIM_FAULTS : METHOD_NOT_ALLOWED
    case '/_sim/stats': return method === 'GET' || method === 'DELETE' ? SIM_STATS : METHOD_NOT_ALLOWED
  }
  if (path.startsWith('/v1/models/') && path.length > 11) return method === 'GET' ? MODEL : METHOD_NOT_ALLOWED
  if (isBedrockPath(path) && bedrockRoute(path) !== null) return method === 'POST' ? CONVERSE : METHOD_NOT_ALLOWED
  return NOT_FOUND
}

function isFaultable(path: string): boolean {
  return path.startsWith('/v1/') || isBedrockPath(path)
}

function onData(this: SimRequest, chunk: Buffer): void {
  this.size += chunk.length
  if (this.size > MAX_BODY_BYTES) {
    this.chunk = null
    this.chunks = null
  } else if (this.chunk === null) {
    this.chunk = chunk
  } else if (this.chunks === null) {
    this.chunks = [this.chunk, chunk]
  } else {
    this.chunks.push(chunk)
  }
}

function onEnd(this: SimRequest): void {
  const res = this.reply
  if (res !== null) arrive(res)
}

export function createRequestHandler(core: SimCore): (req: SimRequest, res: SimResponse) => void {
  function onClose(this: SimResponse): void {
    this.gone = true
    cancelTimer(this)
    if (this.engineRequest !== null) core.engine?.cancel(this.engineRequest)
    if (this.counted) {
      this.counted = false
      core.open--
    }
  }

  return function handle(req: SimRequest, res: SimResponse): void {
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = openAIPath(q === -1 ? url : url.slice(0, q))
    const method = req.method ?? 'GET'
    const route = routeOf(method, path)
    res.core = core
    res.route = route
    res.path = path
    res.on('close', onClose)
    if (route !== SIM_FAULTS && route !== SIM_STATS && route !== METRICS) {
      core.count(path)
      core.open++
      res.counted = true
    }
    if (method === 'POST') {
      req.reply = res
      req.on('data', onData)
      req.on('end', onEnd)
    } else {
      // Bodies of other methods are ignored; Node discards them after the response.
      arrive(res)
    }
  }
}

function arrive(res: SimResponse): void {
  const core = res.core!
  const route = res.route
  if (route === SIM_FAULTS || route === SIM_STATS) {
    sendPlain(res, control(core, res))
    return
  }
  if (route === METRICS) {
    if (core.engine !== null) writeEngineMetrics(res, core.engine, core.options.models[0]!)
    else sendPlain(res, notFound('GET', res.path))
    return
  }
  if (core.faults === NO_FAULTS || !isFaultable(res.path)) {
    respond(res)
    return
  }
  const f = core.faults
  res.faults = f
  if (!f.resetBeforeHeaders) res.faultStatus = core.takeStatus()
  if (f.stallBeforeHeadersMs > 0) res.timer = setTimeout(afterStall, f.stallBeforeHeadersMs, res)
  else afterStall(res)
}

function afterStall(res: SimResponse): void {
  res.timer = null
  if (res.gone) return
  const f = res.faults
  if (f.resetBeforeHeaders) {
    resetConnection(res)
    return
  }
  if (res.faultStatus !== 0) {
    sendFaultStatus(res, f, res.faultStatus)
    return
  }
  respond(res)
}

function sendFaultStatus(res: SimResponse, f: Readonly<Faults>, status: number): void {
  const type = status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error'
  const code = status === 429 ? 'rate_limit_exceeded' : 'simulated_fault'
  const retry = f.retryAfterSeconds !== null && (status === 429 || status === 503) ? ['retry-after', String(f.retryAfterSeconds)] : null
  if (isBedrockPath(res.path)) {
    const reply = bedrockError(status, bedrockFaultType(status), `Simulated upstream failure (HTTP ${status})`) as JsonReply
    writeJson(res, status, reply.body, retry === null ? reply.headers! : reply.headers!.concat(retry))
    return
  }
  const body = isMessagesPath(res.path) ? anthropicFault(status, `Simulated upstream failure (HTTP ${status})`) : errorJson(`Simulated upstream failure (HTTP ${status})`, type, null, code)
  writeJson(res, status, body, retry)
}

function respond(res: SimResponse): void {
  const core = res.core!
  const req = res.req
  let reply: Reply
  switch (res.route) {
    case HEALTH: reply = json(200, core.healthBody); break
    case MODELS: reply = json(200, core.modelsBody); break
    case MODEL: reply = retrieveModel(core, res.path); break
    case CHAT:
    case COMPLETIONS:
    case EMBEDDINGS:
    case RESPONSES:
    case TOKENIZE:
    case MESSAGES:
    case COUNT_TOKENS:
    case CONVERSE: reply = generate(core, res.route, res); break
    case METHOD_NOT_ALLOWED:
      reply = json(405, errorJson(`Method ${req.method ?? ''} is not allowed on ${res.path}`, 'invalid_request_error', null, 'method_not_allowed'))
      break
    default: reply = notFound(req.method ?? 'GET', res.path)
  }
  // The engine paces chat and text completions; a request with wire faults keeps the plain pacing.
  if (core.engine !== null && res.params !== null && res.faults === NO_FAULTS && (res.route === CHAT || res.route === COMPLETIONS) && (reply.kind === 'stream' || reply.status === 200)) {
    deliverFromEngine(res, core.engine, reply, res.params, core.options.tokens)
  } else if (reply.kind === 'stream') deliverStream(res, reply, core.options.ttftMs, core.options.interTokenMs)
  else if (reply.status === 200 && res.route >= CHAT) deliverJson(res, reply, core.options.ttftMs)
  else if (reply.status === 200 && res.faults !== NO_FAULTS) deliverJson(res, reply, 0)
  else writeJson(res, reply.status, reply.body, reply.headers ?? null)
}

function retrieveModel(core: SimCore, path: string): JsonReply {
  let id: string
  try {
    id = decodeURIComponent(path.slice('/v1/models/'.length))
  } catch {
    return invalidRequest('The model id in the URL is not valid percent-encoding', null)
  }
  const body = core.modelBodies.get(id)
  if (body !== undefined) return json(200, body)
  return json(404, errorJson(`The model '${id}' does not exist`, 'invalid_request_error', 'model', 'model_not_found'))
}

/** The body as an object, or null when it is not one (see `bodyError`). */
function parseBody(req: SimRequest): Record<string, unknown> | null {
  if (req.size > MAX_BODY_BYTES) return null
  try {
    const body: unknown = JSON.parse(req.text())
    return body !== null && typeof body === 'object' && !Array.isArray(body) ? body as Record<string, unknown> : null
  } catch {
    return null
  }
}

/** Why `parseBody` returned null; only runs on the error path. */
function bodyError(req: SimRequest): JsonReply {
  if (req.size > MAX_BODY_BYTES) return json(413, errorJson('Request body is too large', 'invalid_request_error', null, null))
  try {
    JSON.parse(req.text())
  } catch (err) {
    return invalidRequest(`We could not parse the JSON body of your request. (${(err as Error).message})`, null)
  }
  return invalidRequest('The request body must be a JSON object', null)
}

function generate(core: SimCore, route: number, res: SimResponse): Reply {
  const req = res.req
  if (route === CONVERSE && core.options.aws !== null) {
    const raw = req.chunks !== null ? Buffer.concat(req.chunks) : (req.chunk ?? Buffer.alloc(0))
    const refused = verifySignature(core.options.aws, req.method ?? 'POST', req.url ?? '/', req.headers, raw, Date.now())
    if (refused !== null) return refused
  }
  const params = parseBody(req)
  if (params === null) return bodyError(req)
  res.params = params
  const genReq: GenRequest = { seq: ++core.seq, created: Math.floor(Date.now() / 1000) }
  switch (route) {
    case CHAT: return chatWithTools(params, core.gen, genReq) ?? chatCompletion(params, core.gen, genReq)
    case TOKENIZE: return tokenize(params)
    case MESSAGES: return messages(params, core.gen, genReq, false)
    case COUNT_TOKENS: return messages(params, core.gen, genReq, true)
    case CONVERSE: {
      const r = bedrockRoute(res.path)!
      return converse(params, r.model, r.stream, core.gen, genReq)
    }
    case COMPLETIONS: return textCompletion(params, core.gen, genReq)
    case EMBEDDINGS: return embeddings(params, core.gen)
    default: return createResponse(params, core.gen, genReq)
  }
}

function sendPlain(res: SimResponse, reply: JsonReply): void {
  writeJson(res, reply.status, reply.body)
}

function control(core: SimCore, res: SimResponse): JsonReply {
  const method = res.req.method
  if (res.route === SIM_STATS) {
    if (method === 'DELETE') core.resetStats()
    return json(200, JSON.stringify(core.stats()))
  }
  if (method === 'DELETE') core.clearFaults()
  else if (method === 'POST') {
    const patch = parseBody(res.req)
    if (patch === null) return bodyError(res.req)
    try {
      core.setFaults(patch)
    } catch (err) {
      return invalidRequest((err as Error).message, null)
    }
  }
  return json(200, JSON.stringify(core.faults))
}
