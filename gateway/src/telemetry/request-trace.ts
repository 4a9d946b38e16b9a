/**
 * The spans of one request, made only when tracing is on (see tracing.ts): a SERVER span that
 * continues the client's W3C `traceparent`/`tracestate`, and a CLIENT span per upstream attempt
 * (retries and hedges included) whose context goes upstream in the same headers. Attributes
 * follow the OpenTelemetry HTTP and GenAI semantic conventions; prompt and completion text are
 * recorded only when `telemetry.tracing.captureContent` is on. Only requests the sampling
 * decision (sampling.ts) records get one: an unsampled request has no RequestTrace at all.
 */
import type { Attributes, Context, Span, TextMapGetter } from '@opentelemetry/api'
import { otel } from './otel-api.ts'
import type { Tracing } from './tracing.ts'
import { OutputCapture } from './output-capture.ts'

const { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } = otel

type IncomingHeaders = Record<string, string | string[] | undefined>

const setter = { set: (carrier: string[], key: string, value: string): void => void carrier.push(key, value) }

const getter: TextMapGetter<IncomingHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
}

/** Request parameters recorded as `gen_ai.request.*` (numbers and stop sequences only: never text). */
const REQUEST_PARAMS: ReadonlyArray<readonly [string, string]> = [
  ['max_tokens', 'gen_ai.request.max_tokens'],
  ['max_completion_tokens', 'gen_ai.request.max_tokens'],
  ['max_output_tokens', 'gen_ai.request.max_tokens'],
  ['temperature', 'gen_ai.request.temperature'],
  ['top_p', 'gen_ai.request.top_p'],
  ['top_k', 'gen_ai.request.top_k'],
  ['frequency_penalty', 'gen_ai.request.frequency_penalty'],
  ['presence_penalty', 'gen_ai.request.presence_penalty'],
  ['seed', 'gen_ai.request.seed'],
  ['n', 'gen_ai.request.choice.count'],
]

export interface TracedMember {
  readonly name: string
  readonly upstreamName: string
  readonly origin: string
}

export interface RequestInfo {
  readonly requestId: string
  readonly method: string
  readonly path: string
  /** gen_ai.operation.name: chat, text_completion, embeddings. */
  readonly operation: string
  readonly model: string
  readonly stream: boolean
  readonly body: Record<string, unknown>
  readonly tenant: string
}

export interface Outcome {
  readonly status: number
  readonly cache: string | null
  readonly responseModel: string | null
  readonly inputTokens: number | null
  readonly outputTokens: number | null
  /** A GW_ERR_* code or the upstream's status class when the request failed. */
  readonly errorType: string | null
}

export class RequestTrace {
  readonly tracing: Tracing
  readonly span: Span
  readonly context: Context
  readonly recording: boolean
  readonly operation: string

  /** For a request its sampling decided to record (`tracing.sampling`); `traceId` is the one that decision was made on. */
  constructor(tracing: Tracing, headers: IncomingHeaders, info: RequestInfo, startedAt: number, traceId: string) {
    this.tracing = tracing
    this.operation = info.operation
    const parent = headers.traceparent === undefined && headers.baggage === undefined ? ROOT_CONTEXT : propagation.extract(ROOT_CONTEXT, headers, getter)
    this.span = tracing.sampling.ids.startSpan(tracing.tracer, `${info.method} ${info.path}`, { kind: SpanKind.SERVER, startTime: startedAt }, parent, traceId)
    this.recording = this.span.isRecording()
    this.context = trace.setSpan(parent, this.span)
    if (!this.recording) return
    const attrs: Attributes = {
      'http.request.method': info.method,
      'http.route': info.path,
      'url.path': info.path,
      'gen_ai.operation.name': info.operation,
      'gen_ai.request.model': info.model,
      'velox.request_id': info.requestId,
      'velox.tenant': info.tenant,
      'velox.stream': info.stream,
    }
    requestParams(info.body, attrs)
    if (tracing.captureContent) captureInput(info.body, attrs)
    this.span.setAttributes(attrs)
  }

  /**
   * A CLIENT span for one upstream attempt; its context is appended to `carrier` as
   * `traceparent` (and `tracestate`) name/value pairs for the upstream request's headers.
   */
  attempt(member: TracedMember, upstreamModel: string, attempt: number, startedAt: number, carrier: string[]): Span | null {
    if (!this.recording) {
      // The SDK dropped a span the sampling decision kept (a sampler that is not one of the
      // standard ones would): no child of it is recorded either; its context goes on.
      propagation.inject(this.context, carrier, setter)
      return null
    }
    const span = this.tracing.tracer.startSpan(`${this.operation} ${upstreamModel}`, { kind: SpanKind.CLIENT, startTime: startedAt }, this.context)
    // The request's context with the attempt's span: the client's baggage goes on too when propagated.
    propagation.inject(trace.setSpan(this.context, span), carrier, setter)
    if (span.isRecording()) {
      const origin = URL.canParse(member.origin) ? new URL(member.origin) : null
      span.setAttributes({
        'gen_ai.operation.name': this.operation,
        'gen_ai.provider.name': providerName(origin?.hostname ?? ''),
        'gen_ai.request.model': upstreamModel,
        'server.address': origin?.hostname ?? member.origin,
        'server.port': origin !== null ? Number(origin.port || (origin.protocol === 'https:' ? 443 : 80)) : 0,
        'velox.upstream': member.upstreamName,
        'velox.upstream.member': member.name,
        'velox.attempt': attempt,
      })
    }
    return span
  }

  /** The first token (a stream's first event) reached the client. */
  firstToken(at: number, sinceStartMs: number): void {
    if (this.recording) this.span.addEvent('gen_ai.first_token', { 'gen_ai.server.time_to_first_token': sinceStartMs / 1000 }, at)
  }

  /** Opt-in only (captureContent): a capture for the response's text, when this span records. */
  outputCapture(sse: boolean): OutputCapture | null {
    return this.recording && this.tracing.captureContent ? new OutputCapture(sse, this.tracing.contentMaxLength) : null
  }

  /** The completion text `capture` read, as gen_ai.output.messages. */
  output(capture: OutputCapture): void {
    const messages = capture.messages()
    if (messages !== null && this.recording) this.span.setAttribute('gen_ai.output.messages', messages)
  }

  end(outcome: Outcome, upstream: TracedMember | null, at: number): void {
    const span = this.span
    if (this.recording) {
      const attrs: Attributes = { 'http.response.status_code': outcome.status }
      if (outcome.cache !== null) attrs['velox.cache'] = outcome.cache
      if (upstream !== null) {
        attrs['velox.upstream'] = upstream.upstreamName
        attrs['velox.upstream.member'] = upstream.name
      }
      usageAttributes(outcome, attrs)
      if (outcome.errorType !== null) attrs['error.type'] = outcome.errorType
      span.setAttributes(attrs)
    }
    if (outcome.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
    span.end(at)
  }
}

/** Ends an attempt's CLIENT span: its status, or the failure that ended it. */
export function endAttempt(span: Span, status: number, outcome: Outcome | null, errorType: string | null, at: number): void {
  if (span.isRecording()) {
    const attrs: Attributes = {}
    if (status > 0) attrs['http.response.status_code'] = status
    if (errorType !== null) attrs['error.type'] = errorType
    if (outcome !== null) usageAttributes(outcome, attrs)
    span.setAttributes(attrs)
  }
  if (errorType !== null || status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
  span.end(at)
}

/**
 * gen_ai.provider.name from the upstream's host: the well-known values of the conventions for
 * hosted APIs, `openai_compatible` for self-hosted servers speaking the OpenAI API (vLLM, SGLang, TGI).
 */
export function providerName(host: string): string {
  if (host === 'api.openai.com') return 'openai'
  if (host.endsWith('.openai.azure.com')) return 'azure.ai.openai'
  if (host === 'api.anthropic.com') return 'anthropic'
  if (host.startsWith('bedrock-runtime.')) return 'aws.bedrock'
  if (host.endsWith('generativelanguage.googleapis.com')) return 'gcp.gemini'
  if (host === 'api.mistral.ai') return 'mistral_ai'
  if (host === 'api.groq.com') return 'groq'
  if (host === 'api.deepseek.com') return 'deepseek'
  return 'openai_compatible'
}

function usageAttributes(outcome: Outcome, attrs: Attributes): void {
  if (outcome.responseModel !== null) attrs['gen_ai.response.model'] = outcome.responseModel
  if (outcome.inputTokens !== null) attrs['gen_ai.usage.input_tokens'] = outcome.inputTokens
  if (outcome.outputTokens !== null) attrs['gen_ai.usage.output_tokens'] = outcome.outputTokens
}

function requestParams(body: Record<string, unknown>, attrs: Attributes): void {
  for (const [field, attr] of REQUEST_PARAMS) {
    const v = body[field]
    if (typeof v === 'number') attrs[attr] = v
  }
  const stop = body.stop
  if (typeof stop === 'string') attrs['gen_ai.request.stop_sequences'] = [stop]
  else if (Array.isArray(stop) && stop.every((s) => typeof s === 'string')) attrs['gen_ai.request.stop_sequences'] = stop as string[]
}

/** Opt-in only: the request's messages (or prompt / input) as JSON, per the GenAI conventions. */
function captureInput(body: Record<string, unknown>, attrs: Attributes): void {
  const input = body.messages ?? body.prompt ?? body.input
  if (input !== undefined) attrs['gen_ai.input.messages'] = JSON.stringify(input)
}

const MODEL_KEY = Buffer.from('"model"')

/** `model` from a response chunk (the first of a body or stream names it), without a full parse. */
export function responseModel(chunk: Buffer | null): string | null {
  if (chunk === null) return null
  const at = chunk.indexOf(MODEL_KEY)
  if (at === -1) return null
  let i = at + MODEL_KEY.length
  while (i < chunk.length && (chunk[i] === 0x20 || chunk[i] === 0x3a)) i++
  if (chunk[i] !== 0x22) return null
  const end = chunk.indexOf(0x22, i + 1)
  if (end === -1 || end - i > 256) return null
  return chunk.toString('utf8', i + 1, end)
}
