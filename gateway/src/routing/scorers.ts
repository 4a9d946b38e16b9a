/**
 * The inference-aware balancer's plugins, in llm-d's three kinds: filters say who may serve,
 * scorers say how well each would (a number in [0, 1], higher is better), the picker takes the
 * best weighted sum. Each reads per-member signals gathered once per pick (`PickSignals`), so
 * every plugin is a pure function of numbers and can be tested alone.
 */

/** Per-member inputs of one pick, indexed like the member array. Reused across picks. */
export class PickSignals {
  n = 0
  /** 1: the member may serve this request. */
  eligible: Uint8Array = new Uint8Array(0)
  /** Requests running + waiting on the member now (estimated). */
  load: Float64Array = new Float64Array(0)
  /** Requests waiting in the member's queue now (estimated); 0 when unknown. */
  queue: Float64Array = new Float64Array(0)
  /** KV-cache use 0..1; -1 when unknown. */
  kvUsage: Float64Array = new Float64Array(0)
  /** Peak-EWMA time to first byte (ms); 0 when never measured. */
  latencyMs: Float64Array = new Float64Array(0)
  /** Leading prompt blocks the member is believed to hold. */
  prefixBlocks: Uint16Array = new Uint16Array(0)
  /** Prompt blocks sent to the member that have not produced a first token yet. */
  pendingPrefill: Float64Array = new Float64Array(0)
  /** The member's learned time per prefill block (ms); 0 when not learned yet. */
  msPerBlock: Float64Array = new Float64Array(0)
  /** Full blocks in the request's prompt (0: no prefix information). */
  requestBlocks = 0

  ensure(n: number): void {
    this.n = n
    if (this.eligible.length >= n) return
    const size = Math.max(n, this.eligible.length * 2, 16)
    this.eligible = new Uint8Array(size)
    this.load = new Float64Array(size)
    this.queue = new Float64Array(size)
    this.kvUsage = new Float64Array(size)
    this.latencyMs = new Float64Array(size)
    this.prefixBlocks = new Uint16Array(size)
    this.pendingPrefill = new Float64Array(size)
    this.msPerBlock = new Float64Array(size)
  }
}

export interface Scorer {
  readonly name: string
  /** Writes out[i] in [0, 1] for every eligible i. */
  score(s: PickSignals, out: Float64Array): void
}

export interface Filter {
  readonly name: string
  /** Clears eligible[i] for members that must not serve; returns how many it cleared. Never clears all. */
  filter(s: PickSignals): number
}

/** Share of the prompt's leading blocks the member holds (0 for all when the prompt has none). */
export const prefixScorer: Scorer = {
  name: 'prefix',
  score(s, out) {
    const total = s.requestBlocks
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1) out[i] = total > 0 ? s.prefixBlocks[i]! / total : 0
  },
}

/**
 * Blocks member i would prefill before this request's first token: what was sent there and has
 * not produced a first token yet, plus the request's own blocks it does not hold, plus one (the
 * partial last block and the step that emits the token, so a fully cached prompt still costs).
 */
export function prefillWork(s: PickSignals, i: number): number {
  return s.pendingPrefill[i]! + (s.requestBlocks - s.prefixBlocks[i]!) + 1
}

/**
 * Estimated time to first token, the quantity the balancer exists to minimise. A vLLM pod
 * prefills in arrival order within its step budget (chunked prefill, FCFS), so a new request's
 * first token waits for the prompt blocks already queued there (`pendingPrefill`) and then for its
 * own blocks the pod does not hold (a cached prefix is skipped). That work times the member's
 * learned time per block (a slow pod's is larger; members not measured yet take the mean of the
 * measured ones) is the estimate; the score is the cheapest estimate over this one's, so 1 for the
 * fastest and 0.5 for a member expected to take twice as long. This one scorer weighs a warm prefix
 * against a queue in the same unit, where prefix and queue scores alone are added by weights.
 */
export const prefillScorer: Scorer = {
  name: 'prefill',
  score(s, out) {
    let known = 0
    let rateSum = 0
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] === 1 && s.msPerBlock[i]! > 0) {
        known++
        rateSum += s.msPerBlock[i]!
      }
    }
    const fallback = known > 0 ? rateSum / known : 1
    let min = Number.POSITIVE_INFINITY
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] !== 1) continue
      const rate = s.msPerBlock[i]! > 0 ? s.msPerBlock[i]! : fallback
      const cost = rate * prefillWork(s, i)
      out[i] = cost
      if (cost < min) min = cost
    }
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1) out[i] = out[i]! > 0 ? min / out[i]! : 1
  },
}

/**
 * Requests waiting in the pod's own queue (vLLM's num_requests_waiting plus what was sent since):
 * 1 / (1 + waiting). Smooth rather than min-max normalised, so one waiting request against none
 * costs half the weight, not all of it; an idle fleet scores 1 everywhere.
 */
export const queueScorer: Scorer = {
  name: 'queue',
  score(s, out) {
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1) out[i] = 1 / (1 + s.queue[i]!)
  },
}

/** Free KV cache: 1 - usage; a member that does not report scores like an empty one. */
export const kvCacheScorer: Scorer = {
  name: 'kvCache',
  score(s, out) {
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] !== 1) continue
      const u = s.kvUsage[i]!
      out[i] = u < 0 ? 1 : 1 - (u > 1 ? 1 : u)
    }
  },
}

/**
 * Requests in flight, relative to the mean: 1 / (1 + load / (mean + 1)). Smooth, so one or two
 * requests more than a neighbour cost little (a warm prefix is worth more than that), while a
 * member far above the mean scores far lower.
 */
export const loadScorer: Scorer = {
  name: 'load',
  score(s, out) {
    let total = 0
    let count = 0
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] !== 1) continue
      total += s.load[i]!
      count++
    }
    const scale = (count > 0 ? total / count : 0) + 1
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1) out[i] = 1 / (1 + s.load[i]! / scale)
  },
}

/** Fastest peak-EWMA time to first byte over the member's: 1 for the fastest, 0.1 for one ten times slower. */
export const latencyScorer: Scorer = {
  name: 'latency',
  score(s, out) {
    let min = Number.POSITIVE_INFINITY
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1 && s.latencyMs[i]! > 0 && s.latencyMs[i]! < min) min = s.latencyMs[i]!
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] !== 1) continue
      const l = s.latencyMs[i]!
      out[i] = l <= 0 || min === Number.POSITIVE_INFINITY ? 1 : min / l
    }
  },
}

/**
 * Bounded load (consistent hashing with bounded loads, Mirrokni et al.): a member whose load plus
 * this request would exceed `factor` x the mean load (this request included, rounded up, and at
 * least MIN_CAP) may not serve, so affinity never piles more than that onto one member. The least loaded member always
 * passes, so the filter never empties the set.
 */
export const MIN_CAP = 4

export function boundedLoadFilter(factor: number): Filter {
  return {
    name: 'boundedLoad',
    filter(s) {
      let total = 0
      let count = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1) continue
        total += s.load[i]!
        count++
      }
      if (count < 2) return 0
      // At least MIN_CAP: at a mean of a request or two, a few in flight is no pile-up worth
      // breaking prefix affinity for (a warm prefix saves more than a short wait costs).
      const cap = Math.max(MIN_CAP, Math.ceil((factor * (total + 1)) / count))
      let cleared = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] === 1 && s.load[i]! + 1 > cap) cleared++
      }
      if (cleared === 0 || cleared === count) return 0
      for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1 && s.load[i]! + 1 > cap) s.eligible[i] = 0
      return cleared
    },
  }
}

export const SCORERS = { prefill: prefillScorer, prefix: prefixScorer, queue: queueScorer, kvCache: kvCacheScorer, load: loadScorer, latency: latencyScorer } as const
export type ScorerName = keyof typeof SCORERS
