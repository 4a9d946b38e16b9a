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
  /**
   * Requests waiting as the pod itself last reported (vllm:num_requests_waiting, fresh scrape);
   * 0 when unknown. Unlike `queue`, no guess about free batch slots from the largest batch seen.
   */
  waiting: Float64Array = new Float64Array(0)
  /**
   * 1: the member's pod metrics are fresh and show no real queue (PodLoad.queued: requests
   * waiting in two scrapes in a row), whatever waits for the engine's next step.
   */
  admits: Uint8Array = new Uint8Array(0)
  /** KV-cache use 0..1; -1 when unknown. */
  kvUsage: Float64Array = new Float64Array(0)
  /** Peak-EWMA time to first byte (ms); 0 when never measured. */
  latencyMs: Float64Array = new Float64Array(0)
  /** Leading prompt blocks the member is believed to hold. */
  prefixBlocks: Uint16Array = new Uint16Array(0)
  /**
   * Of those, the ones past what other prompts share (PrefixIndex.sharedDepth): a conversation's
   * own history, on the members that served its earlier turns.
   */
  privateBlocks: Uint16Array = new Uint16Array(0)
  /** Prompt blocks sent to the member that have not produced a first token yet. */
  pendingPrefill: Float64Array = new Float64Array(0)
  /** The member's learned time per prefill block (ms); 0 when not learned yet. */
  msPerBlock: Float64Array = new Float64Array(0)
  /** Requests recently sent to the member, decayed (Member.recentPlaced). */
  placed: Float64Array = new Float64Array(0)
  /** Full blocks in the request's prompt (0: no prefix information). */
  requestBlocks = 0
  /** Fixed costs of a first token in blocks, added to every member's work in the estimate (pace.fixedBlocks). */
  fixedBlocks = 0

  ensure(n: number): void {
    this.n = n
    if (this.eligible.length >= n) return
    const size = Math.max(n, this.eligible.length * 2, 16)
    this.eligible = new Uint8Array(size)
    this.load = new Float64Array(size)
    this.queue = new Float64Array(size)
    this.waiting = new Float64Array(size)
    this.admits = new Uint8Array(size)
    this.kvUsage = new Float64Array(size)
    this.latencyMs = new Float64Array(size)
    this.prefixBlocks = new Uint16Array(size)
    this.privateBlocks = new Uint16Array(size)
    this.pendingPrefill = new Float64Array(size)
    this.msPerBlock = new Float64Array(size)
    this.placed = new Float64Array(size)
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
    const fallback = fallbackPace(s)
    let min = Number.POSITIVE_INFINITY
    for (let i = 0; i < s.n; i++) {
      if (s.eligible[i] !== 1) continue
      const cost = prefillCost(s, i, fallback)
      out[i] = cost
      if (cost < min) min = cost
    }
    for (let i = 0; i < s.n; i++) if (s.eligible[i] === 1) out[i] = out[i]! > 0 ? min / out[i]! : 1
  },
}

/** The pace of members not measured yet: the mean of the eligible measured ones (1 when none is). */
export function fallbackPace(s: PickSignals): number {
  let known = 0
  let rateSum = 0
  for (let i = 0; i < s.n; i++) {
    if (s.eligible[i] === 1 && s.msPerBlock[i]! > 0) {
      known++
      rateSum += s.msPerBlock[i]!
    }
  }
  return known > 0 ? rateSum / known : 1
}

/** The pace member i is estimated with: its own, or `fallback` when it has none. */
export function paceOf(s: PickSignals, i: number, fallback: number): number {
  return s.msPerBlock[i]! > 0 ? s.msPerBlock[i]! : fallback
}

/** Estimated time to first token on member i (ms, or blocks when no pace is known anywhere). */
export function prefillCost(s: PickSignals, i: number, fallback: number): number {
  return paceOf(s, i, fallback) * (prefillWork(s, i) + s.fixedBlocks)
}

/**
 * The prompt's home among the members `mask` flags (1): the one holding most of its private blocks
 * (for a conversation, the pod that served its earlier turns; the first of equals); -1 when none
 * holds any.
 */
export function homeOf(s: PickSignals, mask: Uint8Array): number {
  let home = -1
  let most = 0
  for (let i = 0; i < s.n; i++) {
    if (mask[i] === 1 && s.privateBlocks[i]! > most) {
      most = s.privateBlocks[i]!
      home = i
    }
  }
  return home
}

/**
 * Stickiness (hysteresis on a conversation's home): `best` won the weighted sum, but the eligible
 * member holding the most private blocks of this prompt (its home: for a conversation, the pod
 * that served its earlier turns) keeps the request unless its estimated time to first token
 * exceeds best's by more than `stickiness` x the time best needs to prefill the private blocks
 * it does not hold.
 * The estimate is greedy and noisy (only this gateway's queued prefill, a pace from few samples,
 * small scorers that can tip a close sum); a move is not: it prefills the history again, delays
 * whatever arrives behind it on the new pod, and leaves the old copy unused. Only private blocks
 * count: a system prompt shared by many conversations is no reason to pile new ones onto the
 * member that has it. Nor is a home whose pod reports a longer queue of its own than best's.
 * Returns the member to pick: `best`, or the home. 0 turns the rule off.
 */
export function stickyPick(s: PickSignals, best: number, stickiness: number): number {
  if (stickiness <= 0 || s.requestBlocks === 0) return best
  const found = homeOf(s, s.eligible)
  const home = found !== -1 && s.privateBlocks[found]! > s.privateBlocks[best]! ? found : best
  // The pod's own queue (vLLM's waiting requests, other gateways' included) is what the estimate
  // does not see: a home that reports a longer one than best's is not kept.
  if (home === best || s.waiting[home]! > s.waiting[best]!) return best
  const fallback = fallbackPace(s)
  const lost = s.privateBlocks[home]! - s.privateBlocks[best]!
  const margin = stickiness * paceOf(s, best, fallback) * lost
  return prefillCost(s, home, fallback) <= prefillCost(s, best, fallback) + margin ? home : best
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
 * least MIN_CAP) may not serve, so affinity never piles more than that onto one member. The least
 * loaded member always passes, so the filter never empties the set.
 *
 * The cap bounds new traffic, not a conversation coming back. A member holding `extra` private
 * blocks of this prompt (a conversation's own history, past what other prompts share) more than
 * the best member under the cap is its home, and:
 * - while its pod has room (`admits`: fresh metrics and no requests waiting in two scrapes in a
 *   row), the cap does not apply to it at all. Staying costs the new turn's own blocks, while a move
 *   prefills the whole history again on a cold pod, and every later turn that arrives before that
 *   prefill ends waits behind it. Nor is it a pile-up: only the conversations already on the
 *   member can come back to it, and where new ones start stays under the cap. The prefill, queue
 *   and load scorers still decide whether the turn stays.
 * - otherwise it may go above the cap by ceil(cap x extra / prompt blocks), up to twice the cap (a
 *   tenth turn, whose history is most of its prompt, stays longer than a second one), and not at
 *   all while the pod reports waiting requests (vLLM's num_requests_waiting in the last fresh
 *   scrape: with a full batch, staying costs a decode's worth of waiting).
 * A first turn (nothing of its own anywhere) or a hot prompt sent again (all of it shared) moves
 * at the cap. (Not the `queue` estimate for "waiting": it guesses the batch size from the largest
 * batch seen, and a pod that never ran full would look queued.)
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
      let over = 0
      let bestUnder = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1) continue
        if (s.load[i]! + 1 > cap) over++
        else if (s.privateBlocks[i]! > bestUnder) bestUnder = s.privateBlocks[i]!
      }
      if (over === 0 || over === count) return 0
      let cleared = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1 || s.load[i]! + 1 <= cap) continue
        const extra = s.privateBlocks[i]! - bestUnder
        if (extra > 0 && s.admits[i] === 1) continue
        if (s.load[i]! + 1 > allowedLoad(cap, s.waiting[i]! > 0 ? 0 : extra, s.requestBlocks)) {
          s.eligible[i] = 0
          cleared++
        }
      }
      return cleared
    },
  }
}

/** The most a member may hold with this request: the cap, raised by the share of the prompt only it holds (at most doubled). */
export function allowedLoad(cap: number, extraBlocks: number, requestBlocks: number): number {
  if (extraBlocks <= 0 || requestBlocks <= 0) return cap
  return cap + Math.ceil((cap * Math.min(extraBlocks, requestBlocks)) / requestBlocks)
}

/**
 * Placement: a member that holds no private block of this prompt (for a first turn, or a prompt
 * sharing at most a system prompt with others, every member; for a later turn, every member but
 * its home) may take the request only while its recent traffic, per unit of its capacity, is at
 * most `factor` x the group's (this request included). Recent traffic (`placed`, requests decayed
 * over `placement.decayMs`) stands for the conversations a member holds: their next turns come
 * back to it. A conversation starting on a member, or moving to one (its history prefilled there
 * again), becomes one more of those, so a member that took more than its share gets the later
 * turns of all of them, and bounded load then has to move some, history and all. Placing by
 * in-flight counts or by a few blocks of shared system prompt does not see that. A member holding
 * private blocks (the conversation's home) is not restricted here: the prefill estimate and
 * bounded load decide whether the turn stays.
 *
 * Capacity is 1, or less for a member whose learned pace is slower than the mean of the measured
 * ones (mean / pace), so a pod three times slower keeps a share of new conversations instead of
 * none, and the faster pods are not filled past `factor` x theirs. When no home is eligible, the
 * restricted member with the least traffic per capacity always passes (never an empty set).
 */
export function placementFilter(factor: number): Filter {
  return {
    name: 'placement',
    filter(s) {
      let count = 0
      let homes = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1) continue
        count++
        if (s.privateBlocks[i]! > 0) homes++
      }
      if (count < 2 || homes === count) return 0
      const mean = fallbackPace(s)
      let placed = 0
      let capacity = 0
      let least = -1
      let leastShare = Number.POSITIVE_INFINITY
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1) continue
        const w = capacityOf(s, i, mean)
        placed += s.placed[i]!
        capacity += w
        const share = s.placed[i]! / w
        if (homes === 0 && share < leastShare) {
          leastShare = share
          least = i
        }
      }
      const limit = (factor * (placed + 1)) / capacity
      let cleared = 0
      for (let i = 0; i < s.n; i++) {
        if (s.eligible[i] !== 1 || s.privateBlocks[i]! > 0 || i === least) continue
        if (s.placed[i]! / capacityOf(s, i, mean) > limit) {
          s.eligible[i] = 0
          cleared++
        }
      }
      return cleared
    },
  }
}

/** A member's capacity relative to the others: 1, or mean / pace when its learned pace is slower than the mean. */
export function capacityOf(s: PickSignals, i: number, meanPace: number): number {
  const p = s.msPerBlock[i]!
  return p > meanPace ? meanPace / p : 1
}

export const SCORERS = { prefill: prefillScorer, prefix: prefixScorer, queue: queueScorer, kvCache: kvCacheScorer, load: loadScorer, latency: latencyScorer } as const
export type ScorerName = keyof typeof SCORERS
