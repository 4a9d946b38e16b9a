/**
 * Consistent hashing on a ring with virtual nodes (ketama): each member owns ~160 points (scaled by
 * weight), a key goes to the owner of the first point at or after the key's hash. A point depends
 * only on its member's name, so adding or removing one of N members moves only the keys that member
 * owns (~1/N); an unavailable member's keys walk on to the next eligible owner and come back when
 * it returns. Useful for prefix-cache affinity: the same user lands on the same vLLM replica.
 *
 * Requests without a key are spread by P2C/peak-EWMA.
 */
import { P2cPeakEwmaBalancer } from './balancer-p2c.ts'
import { hashString } from './hash.ts'
import type { Member } from './member.ts'
import type { Random } from './rng.ts'
import { type Balancer, TierScan } from './tier-scan.ts'

interface Ring {
  readonly points: Uint32Array
  /** owners[k] is the index in the member array of the member owning points[k]. */
  readonly owners: Uint32Array
}

export const DEFAULT_VIRTUAL_NODES = 160

export function buildRing(members: readonly Member<unknown>[], virtualNodes: number): Ring {
  let totalWeight = 0
  for (const m of members) totalWeight += m.weight
  const meanWeight = members.length > 0 ? totalWeight / members.length : 1
  const pointList: { point: number; owner: number }[] = []
  members.forEach((m, owner) => {
    const nodes = Math.max(1, Math.round((virtualNodes * m.weight) / meanWeight))
    for (let j = 0; j < nodes; j++) pointList.push({ point: hashString(`${m.name}#${j}`), owner })
  })
  // Ties (rare) break by member name so the ring does not depend on array order.
  pointList.sort((x, y) => x.point - y.point || (members[x.owner]!.name < members[y.owner]!.name ? -1 : 1))
  return { points: Uint32Array.from(pointList, (p) => p.point), owners: Uint32Array.from(pointList, (p) => p.owner) }
}

export class ConsistentHashBalancer extends TierScan implements Balancer {
  private readonly virtualNodes: number
  private readonly fallback: P2cPeakEwmaBalancer
  private lastMembers: readonly Member<unknown>[] | null = null
  private lastRing: Ring = { points: new Uint32Array(0), owners: new Uint32Array(0) }
  private readonly rings = new WeakMap<readonly Member<unknown>[], Ring>()

  constructor(random: Random, virtualNodes = DEFAULT_VIRTUAL_NODES) {
    super()
    this.virtualNodes = virtualNodes
    this.fallback = new P2cPeakEwmaBalancer(random)
  }

  pick<D>(members: readonly Member<D>[], affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number): Member<D> | null {
    if (affinityKey === null) return this.fallback.pick(members, null, exclude, nowMs)
    const count = this.scan(members, exclude, nowMs)
    if (count === 0) return null
    if (count === 1) return members[this.firstIndex]!
    const { points, owners } = this.ringFor(members)
    const len = points.length
    const h = hashString(affinityKey)
    let lo = 0
    let hi = len
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (points[mid]! < h) lo = mid + 1
      else hi = mid
    }
    const flags = this.flags
    for (let k = 0; k < len; k++) {
      const idx = lo + k < len ? lo + k : lo + k - len
      const owner = owners[idx]!
      if (flags[owner] === 1) return members[owner]!
    }
    return null
  }

  private ringFor(members: readonly Member<unknown>[]): Ring {
    if (members === this.lastMembers) return this.lastRing
    let ring = this.rings.get(members)
    if (ring === undefined) {
      ring = buildRing(members, this.virtualNodes)
      this.rings.set(members, ring)
    }
    this.lastMembers = members
    this.lastRing = ring
    return ring
  }
}
