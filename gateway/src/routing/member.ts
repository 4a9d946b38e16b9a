/**
 * One routable endpoint: an upstream, or one address of an upstream found by DNS discovery.
 * The request path tells it about every attempt, in this order:
 *
 *   member.onStart(now)                      right after pick(), before dispatching
 *   member.onFirstByte(latencyMs, now)       response headers arrived (latency = time to first byte)
 *   member.onSuccess(now) | member.onFailure(kind, now, elapsedMs) | member.onCancel(now)   exactly once
 *
 * For the inference-aware balancer an attempt may also charge the member the prompt blocks it
 * expects the pod to prefill (`beginPrefill`), and release them when the first body byte (the
 * first token) arrives (`endPrefill`) or the attempt ends without one (`dropPrefill`).
 *
 * An upstream's own 4xx answers are successes here (the member worked; the request was wrong).
 * All fields are set in the constructor so every Member has the same hidden class.
 */
import { Breaker, BreakerState } from './breaker.ts'
import { type FailureKind, type OutlierConfig, PACE_DEFAULTS } from './config.ts'
import { PeakEwma } from './ewma.ts'
import { hashString } from './hash.ts'
import { PodLoad } from './pod-load.ts'
import { PrefillPace } from './prefill-pace.ts'

export interface MemberInit {
  /** Unique in a Router: the upstream name, or `upstream@address` for a DNS-discovered member. */
  readonly name: string
  readonly upstreamName: string
  /** `scheme://host:port` to connect to (IPv6 in brackets). */
  readonly origin: string
  /** Path prefix of the upstream URL without a trailing slash; '' when none. */
  readonly basePath: string
  /** The configured URL's `host` (with port if any): Host header and TLS servername when `origin` is an address. */
  readonly host: string
  readonly weight: number
  readonly priority: number
  readonly ewmaDecayMs: number
  readonly outlier: OutlierConfig
  /**
   * Latency charged for a failed attempt when larger than the attempt's own time, so a member that
   * fails fast does not look fast to the latency-aware balancer. Default 1000 ms.
   */
  readonly failurePenaltyMs?: number
  readonly nowMs?: number
  /**
   * How a first token teaches the prefill pace (inference-aware balancer): only behind at least
   * `minBlocks` of work, and over the work plus `fixedBlocks` (the fixed costs of a first token, a
   * decode step and the network, in blocks). Default PACE_DEFAULTS (the config's).
   */
  readonly pace?: { readonly minBlocks: number; readonly fixedBlocks: number; readonly memoryMs?: number }
}

/** Cost of a member that has never answered but has requests in flight (Finagle's penalty). */
const UNKNOWN_LATENCY_PENALTY = 1e12

export class Member<U = unknown> {
  readonly name: string
  readonly upstreamName: string
  readonly origin: string
  readonly basePath: string
  readonly host: string
  readonly weight: number
  readonly priority: number
  /** Hash of `name`: the member's identity on the consistent-hash ring. */
  readonly nameHash: number
  /** What sends requests to `origin` (the gateway's `Upstream`, which owns the undici pool); filled by the member factory. */
  upstream: U
  /** Attempts started and not yet finished (streams count until their last byte). */
  inFlight: number
  readonly ewma: PeakEwma
  readonly breaker: Breaker
  /** Verdict of active health checks; true until a checker says otherwise. */
  healthy: boolean
  /** Removed from its router (DNS no longer lists it): finishes in-flight work, receives no new. */
  draining: boolean
  readonly failurePenaltyMs: number
  /** What the pod last reported on its /metrics (inference-aware balancer), and the estimate since. */
  readonly pod: PodLoad
  /**
   * Prompt blocks this gateway sent to the member that have not produced a first token yet: the
   * prefill work queued on the pod ahead of a new request (inference-aware balancer).
   */
  prefillPending: number
  /**
   * Learned time per pending prefill block (ms: time to first token over the blocks that were
   * ahead of it, its own included, plus the fixed blocks, from first tokens behind at least
   * `paceMinBlocks`; robust to wild samples, see PrefillPace). A slower pod learns a larger one.
   */
  readonly prefillPaceEstimate: PrefillPace
  /** Least work whose first token is a pace sample (blocks). */
  readonly paceMinBlocks: number
  /** Fixed costs of a first token, in blocks, added to the work of a sample. */
  readonly paceFixedBlocks: number
  /**
   * Requests the inference-aware balancer sent here, each decaying exponentially with age (see
   * `notePlaced`): the member's share of recent traffic, which stands for the conversations it
   * holds (their next turns come back to it).
   */
  placed: number
  /** performance.now() `placed` was last brought up to date. */
  placedAt: number
  /** Counters for metrics; never reset. */
  started: number
  failed: number
  lastFailure: FailureKind | null

  constructor(init: MemberInit, upstream: U) {
    this.name = init.name
    this.upstreamName = init.upstreamName
    this.origin = init.origin
    this.basePath = init.basePath
    this.host = init.host
    this.weight = init.weight
    this.priority = init.priority
    this.nameHash = hashString(init.name)
    this.upstream = upstream
    this.inFlight = 0
    this.ewma = new PeakEwma(init.ewmaDecayMs)
    this.breaker = new Breaker(init.outlier, init.nowMs ?? 0)
    this.healthy = true
    this.draining = false
    this.failurePenaltyMs = init.failurePenaltyMs ?? 1_000
    this.pod = new PodLoad()
    this.prefillPending = 0
    this.paceMinBlocks = init.pace?.minBlocks ?? PACE_DEFAULTS.minBlocks
    this.paceFixedBlocks = init.pace?.fixedBlocks ?? PACE_DEFAULTS.fixedBlocks
    this.prefillPaceEstimate = new PrefillPace(init.pace?.memoryMs ?? PACE_DEFAULTS.memoryMs)
    this.placed = 0
    this.placedAt = 0
    this.started = 0
    this.failed = 0
    this.lastFailure = null
  }

  /** Whether new requests may be sent to this member now. */
  available(nowMs: number): boolean {
    return this.healthy && !this.draining && this.breaker.allows(nowMs)
  }

  /** When the current ejection ends; 0 when not ejected. */
  get ejectedUntil(): number {
    return this.breaker.state === BreakerState.CLOSED ? 0 : this.breaker.openUntil
  }

  /** Finagle's P2C/PeakEWMA cost: expected latency times the queue a new request would join. */
  load(nowMs: number): number {
    const latency = this.ewma.get(nowMs)
    if (latency === 0 && this.inFlight !== 0) return UNKNOWN_LATENCY_PENALTY + this.inFlight
    return latency * (this.inFlight + 1)
  }

  onStart(nowMs: number): void {
    this.inFlight++
    this.started++
    this.breaker.onStart(nowMs)
  }

  onFirstByte(latencyMs: number, nowMs: number): void {
    this.ewma.observe(latencyMs, nowMs)
  }

  onSuccess(nowMs: number): void {
    this.release()
    this.breaker.onSuccess(nowMs)
  }

  /**
   * The attempt failed. A 429 does not count toward ejection (the member is alive, only full), but
   * like every failure it raises the latency estimate so load moves elsewhere.
   */
  onFailure(kind: FailureKind, nowMs: number, elapsedMs = 0): void {
    this.release()
    this.failed++
    this.lastFailure = kind
    this.ewma.observe(elapsedMs > this.failurePenaltyMs ? elapsedMs : this.failurePenaltyMs, nowMs)
    if (kind === '429') this.breaker.onSuccess(nowMs)
    else this.breaker.onFailure(nowMs)
  }

  /** The attempt ended for a reason that says nothing about the member (client gone, hedge lost). */
  onCancel(nowMs: number): void {
    this.release()
    this.breaker.onCancel(nowMs)
  }

  /** An attempt will make the pod prefill `blocks`: returns the work it waits for, its own included. */
  beginPrefill(blocks: number): number {
    this.prefillPending += blocks
    return this.prefillPending
  }

  /**
   * The first token of an attempt charged `blocks` came after `ttftMs`, behind `work` blocks
   * (its own included), `stalledMs` of which this process's event loop was stalled (LoopStalls):
   * release the charge and learn the member's time per block from the rest.
   */
  endPrefill(blocks: number, work: number, ttftMs: number, nowMs: number, stalledMs = 0): void {
    this.dropPrefill(blocks)
    // A first token that waited mostly on the gateway itself says little about the pod.
    if (stalledMs > 0) {
      if (stalledMs * 2 > ttftMs) return
      ttftMs -= stalledMs
    }
    // A first token after little work is mostly fixed costs (a step, the network, a busy event
    // loop): over the work alone it would make a member that serves warm prefixes look slow per
    // block. So those fixed costs count as `paceFixedBlocks` blocks (time / (work + fixed)), and
    // warm first tokens teach too: a pod slower on every count (its decode steps as well as its
    // prefill) is seen from the warm turns that are most of its traffic. `paceMinBlocks` > 0
    // keeps first tokens after less work out (32 with no fixed blocks: only cold prefills teach).
    if (work < this.paceMinBlocks || !(ttftMs >= 0) || !(work + this.paceFixedBlocks > 0)) return
    this.prefillPaceEstimate.observe(ttftMs / (work + this.paceFixedBlocks), nowMs)
  }

  /** The learned time per prefill block, or 0 when none is trusted (see PrefillPace). */
  prefillPace(nowMs: number): number {
    return this.prefillPaceEstimate.get(nowMs)
  }

  /** Recent requests at `nowMs`: each counts exp(-age / decayMs). */
  recentPlaced(nowMs: number, decayMs: number): number {
    const age = nowMs - this.placedAt
    return age > 0 ? this.placed * Math.exp(-age / decayMs) : this.placed
  }

  /** One more request was sent here at `nowMs`. */
  notePlaced(nowMs: number, decayMs: number): void {
    const now = nowMs > this.placedAt ? nowMs : this.placedAt
    this.placed = this.recentPlaced(now, decayMs) + 1
    this.placedAt = now
  }

  /** The attempt ended without a first token: release its charge, learn nothing. */
  dropPrefill(blocks: number): void {
    const left = this.prefillPending - blocks
    this.prefillPending = left > 1e-9 ? left : 0
  }

  /** Active health verdict after the checker's thresholds. */
  setHealthy(healthy: boolean, nowMs: number): void {
    this.healthy = healthy
    if (healthy) this.breaker.onActiveHealthy(nowMs)
  }

  private release(): void {
    if (this.inFlight > 0) this.inFlight--
  }
}
