/**
 * Inference-aware balancing: send each request to the member that will produce its first token
 * soonest, as llm-d's scheduler does for vLLM pods. Per pick:
 *
 *   1. filters: available members of the best tier (TierScan), then bounded load;
 *   2. scorers, each in [0, 1]: prefill (estimated time to first token: prompt blocks queued on
 *      the member ahead of this request plus its own uncached ones, times the member's learned
 *      time per block), prefix (share of the prompt's leading blocks the member recently
 *      served, from a bounded per-group PrefixIndex), queue and kvCache (from the pod's own
 *      /metrics, plus what this gateway sent since the scrape), load (requests in flight),
 *      latency (peak-EWMA time to first byte);
 *   3. picker: the highest weighted sum; ties go to a rotating start so equal members share;
 *      then stickiness: the member holding most of the prompt keeps it unless its estimated time
 *      to first token is worse by more than a margin proportional to the prefix a move discards.
 *
 * The chosen member is then recorded as holding the request's prefix blocks. With `explain`, the
 * request gets a one-line reason (member, sum, each scorer, runner-up, how many were filtered).
 *
 * Members without fresh pod metrics (no /metrics, scrape failing) are scored on the gateway's own
 * outstanding count, so the balancer works in front of any OpenAI-compatible upstream.
 */
import type { InferenceAwareConfig } from './config.ts'
import type { Member } from './member.ts'
import { PrefixIndex } from './prefix-index.ts'
import type { RouteRequest } from './route-request.ts'
import { type Filter, type Scorer, PickSignals, SCORERS, type ScorerName, boundedLoadFilter, homeOf, placementFilter, prefillWork, stickyPick } from './scorers.ts'
import { type Balancer, TierScan } from './tier-scan.ts'

interface WeightedScorer {
  readonly scorer: Scorer
  readonly weight: number
}

export class InferenceAwareBalancer extends TierScan implements Balancer {
  readonly index: PrefixIndex
  private readonly scorers: readonly WeightedScorer[]
  private readonly filters: readonly Filter[]
  private readonly staleAfterMs: number
  private readonly usesPrefix: boolean
  private readonly stickiness: number
  private readonly placementDecayMs: number
  private readonly paceTolerance: number
  /** inferenceAware.creditSharedPrefix: every member counts as holding the prompt's shared leading blocks. */
  private readonly creditSharedPrefix: boolean
  private paceScratch: Float64Array = new Float64Array(16)
  private readonly signals = new PickSignals()
  private totals: Float64Array = new Float64Array(16)
  /** scores[k * n + i]: scorer k's score of member i, kept only for explanations. */
  private scratch: Float64Array = new Float64Array(16)
  private cursor = 0

  constructor(cfg: InferenceAwareConfig) {
    super()
    this.index = new PrefixIndex(cfg.prefix.capacity, cfg.prefix.membersPerBlock)
    this.scorers = (Object.keys(SCORERS) as ScorerName[]).filter((name) => cfg.weights[name] > 0).map((name) => ({ scorer: SCORERS[name], weight: cfg.weights[name] }))
    const filters: Filter[] = []
    if (cfg.boundedLoad > 0) filters.push(boundedLoadFilter(cfg.boundedLoad))
    if (cfg.placement.factor > 0) filters.push(placementFilter(cfg.placement.factor))
    this.filters = filters
    this.placementDecayMs = cfg.placement.decayMs
    this.staleAfterMs = cfg.metrics.enabled ? cfg.metrics.staleAfterMs : 0
    this.usesPrefix = cfg.weights.prefix > 0 || cfg.weights.prefill > 0
    this.stickiness = this.usesPrefix ? cfg.stickiness : 0
    this.signals.fixedBlocks = cfg.pace.fixedBlocks
    this.paceTolerance = cfg.pace.tolerance
    this.creditSharedPrefix = cfg.creditSharedPrefix
  }

  pick<D>(members: readonly Member<D>[], _affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number, request: RouteRequest | null = null): Member<D> | null {
    const count = this.scan(members, exclude, nowMs)
    if (count === 0) return null
    const blocks = this.usesPrefix && request !== null ? request.blocks : null
    const explain = request !== null && request.explain
    if (count === 1 && blocks === null && !explain) {
      if (request !== null) request.charge = 1
      const only = members[this.firstIndex]!
      only.notePlaced(nowMs, this.placementDecayMs)
      return only
    }

    const n = members.length
    const s = this.signals
    s.ensure(n)
    this.gather(members, nowMs, blocks)
    let filtered = 0
    for (const f of this.filters) filtered += f.filter(s)

    if (this.totals.length < n) this.totals = new Float64Array(Math.max(n, this.totals.length * 2))
    const totals = this.totals
    totals.fill(0, 0, n)
    const k = this.scorers.length
    if (explain && this.scratch.length < k * n) this.scratch = new Float64Array(k * n)
    for (let j = 0; j < k; j++) {
      const { scorer, weight } = this.scorers[j]!
      const out = explain ? this.scratch.subarray(j * n, (j + 1) * n) : this.scoreBuffer(n)
      scorer.score(s, out)
      for (let i = 0; i < n; i++) if (s.eligible[i] === 1) totals[i] = totals[i]! + weight * out[i]!
    }

    const start = this.cursor++ % n
    if (this.cursor >= n) this.cursor = 0
    let best = -1
    let second = -1
    for (let step = 0; step < n; step++) {
      const i = start + step < n ? start + step : start + step - n
      if (s.eligible[i] !== 1) continue
      if (best === -1 || totals[i]! > totals[best]! + 1e-9) {
        second = best
        best = i
      } else if (second === -1 || totals[i]! > totals[second]! + 1e-9) {
        second = i
      }
    }
    let stuck = false
    if (blocks !== null && this.stickiness > 0) {
      const home = stickyPick(s, best, this.stickiness)
      if (home !== best) {
        second = best
        best = home
        stuck = true
      }
    }
    const winner = members[best]!
    if (request !== null) request.charge = prefillWork(s, best) - s.pendingPrefill[best]!
    if (blocks !== null) this.index.record(blocks, winner)
    winner.notePlaced(nowMs, this.placementDecayMs)
    if (explain) request.explanation = this.explainPick(members, best, second, filtered, stuck)
    return winner
  }

  private scoreBufferStore: Float64Array = new Float64Array(16)
  private scoreBuffer(n: number): Float64Array {
    if (this.scoreBufferStore.length < n) this.scoreBufferStore = new Float64Array(Math.max(n, this.scoreBufferStore.length * 2))
    return this.scoreBufferStore
  }

  /** Fills the signals of every flagged member. */
  private gather(members: readonly Member<unknown>[], nowMs: number, blocks: Uint32Array | null): void {
    const s = this.signals
    const n = members.length
    const flags = this.flags
    for (let i = 0; i < n; i++) {
      s.eligible[i] = flags[i]!
      if (flags[i] !== 1) continue
      const m = members[i]!
      const pod = m.pod
      if (this.staleAfterMs > 0 && pod.fresh(nowMs, this.staleAfterMs)) {
        s.load[i] = pod.load(m.inFlight)
        s.queue[i] = pod.queue(m.inFlight)
        s.waiting[i] = pod.waiting
        s.admits[i] = pod.queued() ? 0 : 1
        s.kvUsage[i] = pod.kvUsage
      } else {
        s.load[i] = m.inFlight
        s.queue[i] = 0
        s.waiting[i] = 0
        s.admits[i] = 0
        s.kvUsage[i] = -1
      }
      s.latencyMs[i] = m.ewma.get(nowMs)
      s.pendingPrefill[i] = m.prefillPending
      s.msPerBlock[i] = m.prefillPace(nowMs)
      s.placed[i] = m.recentPlaced(nowMs, this.placementDecayMs)
    }
    if (this.paceTolerance > 1) this.snapPaces(n)
    if (blocks !== null) {
      this.index.match(blocks, members)
      const { matched, sharedDepth } = this.index
      const credited = this.creditSharedPrefix ? sharedDepth : 0
      for (let i = 0; i < n; i++) {
        s.prefixBlocks[i] = matched[i]! > credited ? matched[i]! : credited
        s.privateBlocks[i] = matched[i]! > sharedDepth ? matched[i]! - sharedDepth : 0
      }
      s.requestBlocks = blocks.length
    } else {
      s.prefixBlocks.fill(0, 0, n)
      s.privateBlocks.fill(0, 0, n)
      s.requestBlocks = 0
    }
  }

  /**
   * Paces within `pace.tolerance` of the group's (the lower median of the learned ones: with two
   * members, the faster) become the group's, so equal pods compare on blocks alone, as if no pace
   * were known, while a pod outside the band keeps its own.
   */
  private snapPaces(n: number): void {
    const s = this.signals
    if (this.paceScratch.length < n) this.paceScratch = new Float64Array(Math.max(n, this.paceScratch.length * 2))
    let known = 0
    for (let i = 0; i < n; i++) if (s.eligible[i] === 1 && s.msPerBlock[i]! > 0) this.paceScratch[known++] = s.msPerBlock[i]!
    if (known < 2) return
    const sorted = this.paceScratch.subarray(0, known).sort()
    const ref = sorted[(known - 1) >> 1]!
    const hi = ref * this.paceTolerance
    const lo = ref / this.paceTolerance
    for (let i = 0; i < n; i++) {
      const p = s.msPerBlock[i]!
      if (s.eligible[i] === 1 && p > 0 && p <= hi && p >= lo) s.msPerBlock[i] = ref
    }
  }

  private explainPick(members: readonly Member<unknown>[], best: number, second: number, filtered: number, stuck: boolean): string {
    const s = this.signals
    const n = members.length
    const parts = [`member=${members[best]!.name}`, `score=${this.totals[best]!.toFixed(3)}`]
    for (let j = 0; j < this.scorers.length; j++) {
      const { scorer, weight } = this.scorers[j]!
      parts.push(`${scorer.name}=${this.scratch[j * n + best]!.toFixed(3)}x${weight}`)
    }
    parts.push(`prefix_blocks=${s.prefixBlocks[best]}/${s.requestBlocks}`, `pending_blocks=${Math.round(s.pendingPrefill[best]!)}`, `queue=${s.queue[best]}`, `load=${s.load[best]}`)
    if (s.msPerBlock[best]! > 0) parts.push(`ms_per_block=${s.msPerBlock[best]!.toFixed(2)}`)
    if (s.kvUsage[best]! >= 0) parts.push(`kv=${s.kvUsage[best]!.toFixed(3)}`)
    parts.push(`placed=${s.placed[best]!.toFixed(1)}`)
    if (second !== -1) parts.push(`runner_up=${members[second]!.name}:${this.totals[second]!.toFixed(3)}`)
    parts.push(`filtered=${filtered}`)
    // A later turn that left its conversation's home: say where the home was and why it lost.
    // Among the members before the filters (this.flags), so a home bounded load took out is named too.
    const home = homeOf(s, this.flags)
    if (home !== -1 && home !== best) {
      const why = s.eligible[home] === 1 ? `score=${this.totals[home]!.toFixed(3)}` : 'filtered'
      parts.push(`home=${members[home]!.name}:${why}:private=${s.privateBlocks[home]}:load=${s.load[home]}:waiting=${s.waiting[home]}`)
    }
    // The home kept the request against a higher sum (stickiness): runner_up is the sum's winner.
    if (stuck) parts.push('sticky=1')
    return parts.join('; ')
  }
}
