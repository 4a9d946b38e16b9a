/**
 * Least outstanding requests; ties go to the heavier member. The scan starts at a rotating offset
 * so equal members share sequential traffic instead of the first one taking it all.
 */
import type { Member } from './member.ts'
import { type Balancer, TierScan } from './tier-scan.ts'

export class LeastOutstandingBalancer extends TierScan implements Balancer {
  private cursor = 0

  pick<D>(members: readonly Member<D>[], _affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number): Member<D> | null {
    const count = this.scan(members, exclude, nowMs)
    if (count === 0) return null
    if (count === 1) return members[this.firstIndex]!
    const n = members.length
    const start = this.cursor++ % n
    if (this.cursor >= n) this.cursor = 0
    const flags = this.flags
    let best: Member<D> | null = null
    for (let k = 0; k < n; k++) {
      const i = start + k < n ? start + k : start + k - n
      if (flags[i] !== 1) continue
      const m = members[i]!
      if (best === null || m.inFlight < best.inFlight || (m.inFlight === best.inFlight && m.weight > best.weight)) best = m
    }
    return best
  }
}
