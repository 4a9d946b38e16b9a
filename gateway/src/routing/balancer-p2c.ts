/**
 * Power of two choices over peak-EWMA load (Finagle's P2CPeakEwma, linkerd2-proxy's balancer):
 * sample two distinct members with probability proportional to weight, send to the one with the
 * lower latency * (outstanding + 1). Two samples avoid the herd that "always the best" causes when
 * load data is stale, while still steering firmly away from slow or queued members.
 */
import type { Member } from './member.ts'
import type { Random } from './rng.ts'
import { type Balancer, TierScan } from './tier-scan.ts'

export class P2cPeakEwmaBalancer extends TierScan implements Balancer {
  private readonly random: Random

  constructor(random: Random) {
    super()
    this.random = random
  }

  pick<D>(members: readonly Member<D>[], _affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number): Member<D> | null {
    const count = this.scan(members, exclude, nowMs)
    if (count === 0) return null
    if (count === 1) return members[this.firstIndex]!
    const a = this.sample(members, -1)
    const aMember = members[a]!
    const b = this.sample(members, a)
    const bMember = members[b]!
    return bMember.load(nowMs) < aMember.load(nowMs) ? bMember : aMember
  }

  /**
   * A flagged member drawn with probability proportional to weight, never `skip`. Doubles stay
   * inside this frame: passing them as arguments would box them on every pick.
   */
  private sample(members: readonly Member<unknown>[], skip: number): number {
    const flags = this.flags
    let r = this.random() * (skip < 0 ? this.totalWeight : this.totalWeight - members[skip]!.weight)
    let last = -1
    for (let i = 0; i < members.length; i++) {
      if (flags[i] !== 1 || i === skip) continue
      last = i
      r -= members[i]!.weight
      if (r < 0) return i
    }
    return last
  }
}
