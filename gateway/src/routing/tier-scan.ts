/**
 * The first pass every balancer makes: which members may take this request, and which priority
 * tier is in force (the lowest-numbered tier with an eligible member; a higher tier serves only
 * when everything below it is unavailable or already tried).
 *
 * Results live in reusable fields and a growable flag array so a pick allocates nothing.
 */
import type { Member } from './member.ts'
import type { RouteRequest } from './route-request.ts'

export interface Balancer {
  /**
   * Choose a member for one attempt, or null when none is eligible. `affinityKey` is the affinity key (only
   * the consistent-hash balancer reads it); `exclude` holds members already tried by this request.
   * Call `member.onStart(nowMs)` on the result before anything else picks. `request` carries
   * what the inference-aware balancer reads (prompt prefix, explain); the others ignore it.
   */
  pick<D>(members: readonly Member<D>[], affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number, request?: RouteRequest | null): Member<D> | null
}

export class TierScan {
  /** flags[i] === 1: members[i] is eligible and in the chosen tier. */
  protected flags: Uint8Array = new Uint8Array(16)
  /** Eligible members in the chosen tier. */
  protected count = 0
  /** Their summed weight. */
  protected totalWeight = 0
  /** Index of one of them (the only one when count === 1). */
  protected firstIndex = -1

  /** Fills flags/count/totalWeight/firstIndex; returns count. */
  protected scan(members: readonly Member<unknown>[], exclude: ReadonlySet<Member<unknown>> | null, nowMs: number): number {
    const n = members.length
    if (this.flags.length < n) this.flags = new Uint8Array(Math.max(n, this.flags.length * 2))
    const flags = this.flags
    let tier = Number.POSITIVE_INFINITY
    let count = 0
    let total = 0
    let first = -1
    let mixedTiers = false
    for (let i = 0; i < n; i++) {
      const m = members[i]!
      if (!m.available(nowMs) || (exclude !== null && exclude.has(m))) {
        flags[i] = 0
        continue
      }
      flags[i] = 1
      if (m.priority < tier) {
        if (count > 0) mixedTiers = true
        tier = m.priority
        count = 1
        total = m.weight
        first = i
      } else if (m.priority === tier) {
        count++
        total += m.weight
      } else {
        mixedTiers = true
      }
    }
    // Members eligible but in a worse tier than the one finally chosen lose their flag.
    if (mixedTiers) {
      for (let i = 0; i < n; i++) if (flags[i] === 1 && members[i]!.priority !== tier) flags[i] = 0
    }
    this.count = count
    this.totalWeight = total
    this.firstIndex = first
    return count
  }
}
