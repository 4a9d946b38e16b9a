/**
 * Smooth weighted round robin (nginx's ngx_http_upstream_get_peer): each pick adds every eligible
 * member's weight to its running score, takes the highest, and subtracts the total from the winner.
 * Over any cycle of sum(weights) picks each member gets exactly its weight, interleaved rather than
 * in bursts (5,1,1 -> a a b a c a a).
 *
 * Scores belong to one member array. Arrays are immutable (copy-on-write), so a new array means a
 * membership change and starts fresh scores.
 */
import type { Member } from './member.ts'
import { type Balancer, TierScan } from './tier-scan.ts'

export class WeightedRoundRobinBalancer extends TierScan implements Balancer {
  private lastMembers: readonly Member<unknown>[] | null = null
  private lastScores: Float64Array = new Float64Array(0)
  private readonly scoresByMembers = new WeakMap<readonly Member<unknown>[], Float64Array>()

  pick<D>(members: readonly Member<D>[], _affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number): Member<D> | null {
    const count = this.scan(members, exclude, nowMs)
    if (count === 0) return null
    const scores = this.scoresFor(members)
    const flags = this.flags
    let best = -1
    for (let i = 0; i < members.length; i++) {
      if (flags[i] !== 1) continue
      scores[i]! += members[i]!.weight
      if (best < 0 || scores[i]! > scores[best]!) best = i
    }
    scores[best]! -= this.totalWeight
    return members[best]!
  }

  private scoresFor(members: readonly Member<unknown>[]): Float64Array {
    if (members === this.lastMembers) return this.lastScores
    let scores = this.scoresByMembers.get(members)
    if (scores === undefined) {
      scores = new Float64Array(members.length)
      this.scoresByMembers.set(members, scores)
    }
    this.lastMembers = members
    this.lastScores = scores
    return scores
  }
}
