/**
 * undici's handler for one dispatch of a call. It holds the response headers until the first body
 * byte (a stream's first event), so a response that breaks or stalls before it can still fail
 * over, and holds an upstream error answer that may be passed through when no retry is left.
 * Callbacks of an attempt the call no longer follows (cancelled, or replaced) are ignored.
 */
import type { Span } from '@opentelemetry/api'
import type { Dispatcher } from 'undici'
import type { OutgoingRequest } from '../providers/index.ts'
import { EVENT_STREAM_CONTENT_TYPE, exceptionAtStart } from '../protocols/bedrock/event-stream.ts'
import type { FailureKind } from '../routing/config.ts'
import { endAttempt } from '../telemetry/request-trace.ts'
import type { Waiter } from '../upstream/admission.ts'
import { endFollows } from '../upstream/http1-pool.ts'
import type { ProxyCall } from './call.ts'
import type { UpstreamMember, UpstreamHeaders } from './context.ts'
import { loopStalls } from '../routing/loop-stalls.ts'

/** An upstream error answer held while no retry is left, to pass through whole if it is small. */
export interface HeldError {
  readonly status: number
  readonly headers: UpstreamHeaders
  readonly chunks: Buffer[]
  bytes: number
}

/** Error bodies are small; past this a held error is streamed on with backpressure instead. */
const MAX_HELD_ERROR_BYTES = 64 * 1024
/** The first event of a stream that failed before it started: chat-style, or Responses/Messages `event: error`. */
const SSE_ERROR_PREFIX = Buffer.from('data: {"error"')
const SSE_ERROR_EVENT_PREFIX = Buffer.from('event: error')

function isErrorEvent(chunk: Buffer): boolean {
  if (chunk.subarray(0, SSE_ERROR_PREFIX.length).equals(SSE_ERROR_PREFIX)) return true
  if (!chunk.subarray(0, SSE_ERROR_EVENT_PREFIX.length).equals(SSE_ERROR_EVENT_PREFIX)) return false
  const next = chunk[SSE_ERROR_EVENT_PREFIX.length]
  return next === undefined || next === 0x0a || next === 0x0d // the whole event name, not `event: error_xyz`
}
const CANCELLED = new Error('request cancelled by the gateway')

export class Attempt implements Dispatcher.DispatchHandler, Waiter {
  readonly call: ProxyCall
  readonly member: UpstreamMember
  readonly startedAt: number
  #firstByteAt: number
  #controller: Dispatcher.DispatchController | null
  #sse: boolean
  /** The stream is AWS event-stream framing (Bedrock's ConverseStream), not text SSE. */
  #binaryEvents: boolean
  #heldStatus: number
  #heldHeaders: UpstreamHeaders | null
  #heldError: HeldError | null
  /** The member was told how this attempt ended (exactly once). */
  #settled: boolean
  #cancelled: boolean
  /** The attempt's CLIENT span while tracing is on, else null; ended when the attempt settles. */
  span: Span | null
  /** The upstream's status once it answered; 0 before. */
  statusCode: number
  /** When it started waiting in the upstream's admission queue (performance.now() ms); 0 = not waiting. */
  queuedAt: number
  /** The path and body for a provider of another kind; null sends the call's own. */
  outgoing: OutgoingRequest | null
  /** Holds one of the upstream's admission slots (handed to undici, not finished). */
  #slot: boolean
  /** Prompt blocks charged to the member until the first token (inference-aware routing); 0: none. */
  prefill: number
  /** The member's pending prefill work when this attempt was charged, its own included. */
  prefillWork: number

  constructor(call: ProxyCall, member: UpstreamMember, now: number) {
    this.call = call
    this.member = member
    this.startedAt = now
    this.#firstByteAt = 0
    this.#controller = null
    this.#sse = false
    this.#binaryEvents = false
    this.#heldStatus = 0
    this.#heldHeaders = null
    this.#heldError = null
    this.#settled = false
    this.#cancelled = false
    this.span = null
    this.statusCode = 0
    this.queuedAt = 0
    this.outgoing = null
    this.#slot = false
    this.prefill = 0
    this.prefillWork = 0
  }

  /** Waiter: a cancelled attempt no longer wants a slot. */
  get gaveUp(): boolean {
    return this.#cancelled
  }

  /** Waiter: the caller's priority class (0 is critical), for the upstream's queue. */
  get priority(): number {
    return this.call.request.priority
  }

  /** Waiter: the caller's tenant; the queue serves tenants of a class in turn. */
  get tenant(): string {
    return this.call.request.tenant
  }

  /** Waiter: a request of a more important class took this attempt's place in the queue. */
  shed(): void {
    this.queuedAt = 0
    this.call.queueShed(this)
  }

  /** Waiter: a slot came free; the call sends the attempt now. */
  admitted(): void {
    this.queuedAt = 0
    this.call.send(this)
  }

  /** The attempt was handed to undici holding a slot (released when undici is done with it). */
  sent(): void {
    this.#slot = true
  }

  /** Gives the slot back once undici is done with the request, whatever the outcome. */
  #releaseSlot(): void {
    if (!this.#slot) return
    this.#slot = false
    this.member.upstream.admission.release()
  }

  /** When its first byte went to the client (performance.now() ms); 0 until it won. */
  get firstByteAt(): number {
    return this.#firstByteAt
  }

  /** The response is an event stream (for the client: a binary upstream stream is translated to SSE). */
  get sse(): boolean {
    return this.#sse
  }

  /** The status and headers held until the first body byte (null once released, or never held). */
  get heldStatus(): number {
    return this.#heldStatus
  }

  get heldHeaders(): UpstreamHeaders | null {
    return this.#heldHeaders
  }

  /** Headers came, the first body byte has not: the first-byte deadline applies. */
  get awaitingFirstByte(): boolean {
    return this.#heldHeaders !== null
  }

  /** This attempt's response is the one the client gets. */
  won(now: number): void {
    this.#firstByteAt = now
  }

  /** Releases the member's prefill charge: at the first token (learning its pace) or without one. */
  #endPrefill(firstToken: boolean, now: number): void {
    const blocks = this.prefill
    this.prefill = 0
    if (firstToken) this.member.endPrefill(blocks, this.prefillWork, now - this.startedAt, now, loopStalls.between(this.startedAt, now))
    else this.member.dropPrefill(blocks)
  }

  /** Tells the member how the attempt ended: a failure kind, or null for success. */
  settle(kind: FailureKind | null, now: number): void {
    if (this.#settled) return
    this.#settled = true
    if (this.prefill !== 0) this.#endPrefill(false, now)
    if (kind === null) this.member.onSuccess(now)
    else this.member.onFailure(kind, now, now - this.startedAt)
    if (this.span !== null) this.#endSpan(kind, now)
  }

  #endSpan(errorType: string | null, now: number): void {
    endAttempt(this.span!, this.statusCode, null, errorType, now)
    this.span = null
  }

  /** Aborts the dispatch for a reason that says nothing about the member. */
  cancel(now: number): void {
    if (!this.#settled) {
      this.#settled = true
      if (this.prefill !== 0) this.#endPrefill(false, now)
      this.member.onCancel(now)
    }
    if (this.span !== null) this.#endSpan('cancelled', now)
    this.abandon()
  }

  /**
   * Stops the dispatch of an attempt the call no longer follows (already settled, or replaced).
   * Marked first: undici may call back synchronously from abort, and those callbacks are ignored.
   */
  abandon(): void {
    this.#cancelled = true
    if (this.queuedAt !== 0) {
      // Still waiting for a slot: leave the queue; nothing was sent.
      this.queuedAt = 0
      this.member.upstream.admission.left(this)
      return
    }
    this.#controller?.abort(CANCELLED)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#cancelled) controller.abort(CANCELLED)
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: UpstreamHeaders): void {
    const call = this.call
    if (this.#cancelled || !call.isLive(this)) return controller.abort(CANCELLED)
    if (statusCode < 200) return
    this.statusCode = statusCode
    const now = performance.now()
    const ttfb = now - this.startedAt
    this.member.onFirstByte(ttfb, now)
    call.request.resolution.hedge.record(ttfb, now)
    const verdict = call.onStatus(this, statusCode)
    if (verdict === 'abort') return this.abandon()
    if (verdict === 'hold') {
      this.#heldError = { status: statusCode, headers, chunks: [], bytes: 0 }
      return
    }
    const contentType = headers['content-type']
    this.#sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream')
    if (!this.#sse && typeof contentType === 'string' && contentType.startsWith(EVENT_STREAM_CONTENT_TYPE)) {
      // Bedrock's stream: translated to SSE for the client, held and checked like one.
      this.#sse = true
      this.#binaryEvents = true
    }
    this.#heldStatus = statusCode
    this.#heldHeaders = headers
    if (this.#sse) call.awaitFirstEvent()
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const call = this.call
    if (this.#cancelled || !call.isLive(this)) return
    const held = this.#heldError
    if (held !== null) {
      held.chunks.push(chunk)
      held.bytes += chunk.length
      if (held.bytes <= MAX_HELD_ERROR_BYTES) return
      this.#heldError = null
      call.releaseHeld(this, held)
      return
    }
    if (this.#heldHeaders !== null) {
      const headers = this.#heldHeaders
      this.#heldHeaders = null
      if (this.prefill !== 0) this.#endPrefill(true, performance.now())
      if (this.#sse && !this.#binaryEvents && isErrorEvent(chunk) && call.streamErrorFirst(this, '5xx')) return this.abandon()
      if (this.#binaryEvents) {
        const exception = exceptionAtStart(chunk)
        // Bedrock's throttling arrives as the stream's first event: it counts as the 429 it means.
        if (exception !== null && call.streamErrorFirst(this, exception === 'throttlingException' ? '429' : '5xx')) return this.abandon()
      }
      call.commit(this, this.#heldStatus, headers, performance.now())
    }
    if (!call.write(chunk, endFollows(controller))) {
      controller.pause()
      call.whenDrained(() => controller.resume())
    }
  }

  onResponseEnd(): void {
    this.#releaseSlot()
    const call = this.call
    if (this.#cancelled || !call.isLive(this)) return
    if (this.#heldHeaders !== null) {
      const headers = this.#heldHeaders
      this.#heldHeaders = null
      // A stream that ends with no event at all is no answer; an empty plain body (204) is one.
      if (this.#sse) {
        call.noFirstEvent(this)
        return
      }
      call.commit(this, this.#heldStatus, headers, performance.now())
    }
    call.end(this, this.#heldError)
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#releaseSlot()
    if (this.#cancelled || !this.call.isLive(this)) return
    this.call.fail(this, err)
  }
}
