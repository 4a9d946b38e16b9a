/**
 * A bounded wait shared by tenants of different priority classes: one lane per class, served
 * highest class first, and inside a lane one queue per tenant served round-robin, so one
 * tenant's burst waits behind its own requests, not in front of everybody else's (deficit round
 * robin with a quantum of one request, as in fair queueing). A newcomer of a higher class may
 * take the place of the most recent waiter of the lowest class present (the tenant with the most
 * waiting pays first): lower classes are shed before higher ones.
 *
 * Items that give up are marked (`gaveUp`) and reported with `remove()`; they stay in their
 * tenant's array until their turn and are then skipped, so leaving costs nothing.
 */
import { PRIORITIES, type Priority } from '../auth/config.ts'

/** Class index of each priority: 0 is `critical`, the most important. */
export const PRIORITY_CLASS: Readonly<Record<Priority, number>> = Object.freeze(Object.fromEntries(PRIORITIES.map((p, i) => [p, i])) as Record<Priority, number>)
export const NORMAL_CLASS = PRIORITY_CLASS.normal
export const CLASS_COUNT = PRIORITIES.length

export interface FairItem {
  /** Set when the item no longer wants its turn; it is then skipped. */
  readonly gaveUp: boolean
  /** Class index (PRIORITY_CLASS): 0 is the most important. */
  readonly priority: number
  /** Whose request: round-robin goes between tenants within a class. */
  readonly tenant: string
}

class TenantQueue<T> {
  readonly tenant: string
  items: T[]
  head: number
  /** Items in `items` that have not given up. */
  live: number
  /** In its lane's round-robin ring. */
  ringed: boolean

  constructor(tenant: string) {
    this.tenant = tenant
    this.items = []
    this.head = 0
    this.live = 0
    this.ringed = false
  }

  compact(): void {
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

class Lane<T> {
  readonly tenants = new Map<string, TenantQueue<T>>()
  /** Tenants with waiting items, in turn order. */
  ring: TenantQueue<T>[] = []
  ringHead = 0
  live = 0
}

export class FairQueue<T extends FairItem> {
  readonly #lanes: Lane<T>[]
  #size: number

  constructor() {
    this.#lanes = Array.from({ length: CLASS_COUNT }, () => new Lane<T>())
    this.#size = 0
  }

  /** Items waiting that have not given up. */
  get size(): number {
    return this.#size
  }

  /** Waiting items of class `priority` or a more important one. */
  atOrAbove(priority: number): number {
    let n = 0
    for (let c = 0; c <= priority && c < CLASS_COUNT; c++) n += this.#lanes[c]!.live
    return n
  }

  /** Waiting items of class `priority`. */
  inClass(priority: number): number {
    return this.#lanes[clamp(priority)]!.live
  }

  push(item: T): void {
    const lane = this.#lanes[clamp(item.priority)]!
    let q = lane.tenants.get(item.tenant)
    if (q === undefined) lane.tenants.set(item.tenant, (q = new TenantQueue<T>(item.tenant)))
    q.items.push(item)
    q.live++
    lane.live++
    this.#size++
    if (!q.ringed) {
      q.ringed = true
      lane.ring.push(q)
    }
  }

  /** An item that set `gaveUp` leaves (its slot in the arrays is skipped later). */
  remove(item: T): void {
    const lane = this.#lanes[clamp(item.priority)]!
    const q = lane.tenants.get(item.tenant)
    if (q === undefined || q.live === 0) return
    q.live--
    lane.live--
    this.#size--
  }

  /** Some item of a less important class than `priority` waits. */
  hasBelow(priority: number): boolean {
    for (let c = CLASS_COUNT - 1; c > priority; c--) if (this.#lanes[c]!.live > 0) return true
    return false
  }

  /** The class index of the most important waiting item, or -1 when none waits. */
  topClass(): number {
    for (let c = 0; c < CLASS_COUNT; c++) if (this.#lanes[c]!.live > 0) return c
    return -1
  }

  /** The next item: the most important class, the next tenant in its turn, that tenant's oldest. */
  shift(): T | undefined {
    const c = this.topClass()
    if (c === -1) return undefined
    const lane = this.#lanes[c]!
    while (lane.ringHead < lane.ring.length) {
      const q = lane.ring[lane.ringHead]!
      lane.ring[lane.ringHead++] = undefined as unknown as TenantQueue<T>
      let item: T | undefined
      while (q.head < q.items.length) {
        const candidate = q.items[q.head]!
        q.items[q.head++] = undefined as unknown as T
        if (!candidate.gaveUp) {
          item = candidate
          break
        }
      }
      q.compact()
      if (item === undefined) {
        // Only items that gave up were left: the tenant leaves the ring until it queues again.
        q.ringed = false
        q.live = 0
        continue
      }
      q.live--
      lane.live--
      this.#size--
      // Its next item waits for the other tenants' turns.
      if (q.live > 0) lane.ring.push(q)
      else {
        q.ringed = false
        q.items = []
        q.head = 0
      }
      this.#compactRing(lane)
      return item
    }
    this.#compactRing(lane)
    return undefined
  }

  /**
   * Takes out the most recent waiting item of the least important class below `priority` (of the
   * tenant with the most waiting in that class), or returns undefined when none is below it.
   */
  evictBelow(priority: number): T | undefined {
    for (let c = CLASS_COUNT - 1; c > priority; c--) {
      const lane = this.#lanes[c]!
      if (lane.live === 0) continue
      let victim: TenantQueue<T> | null = null
      for (const q of lane.tenants.values()) if (q.live > 0 && (victim === null || q.live > victim.live)) victim = q
      if (victim === null) continue
      while (victim.items.length > victim.head) {
        const item = victim.items.pop()!
        if (item.gaveUp) continue
        victim.live--
        lane.live--
        this.#size--
        return item
      }
    }
    return undefined
  }

  /** Every waiting item, emptying the queue (shutdown, reload). */
  drain(): T[] {
    const out: T[] = []
    for (const lane of this.#lanes) {
      for (const q of lane.tenants.values()) for (let i = q.head; i < q.items.length; i++) if (!q.items[i]!.gaveUp) out.push(q.items[i]!)
      lane.tenants.clear()
      lane.ring = []
      lane.ringHead = 0
      lane.live = 0
    }
    this.#size = 0
    return out
  }

  #compactRing(lane: Lane<T>): void {
    if (lane.ringHead === lane.ring.length) {
      lane.ring = []
      lane.ringHead = 0
    } else if (lane.ringHead > 64 && lane.ringHead * 2 > lane.ring.length) {
      lane.ring = lane.ring.slice(lane.ringHead)
      lane.ringHead = 0
    }
    // Tenants that have nothing left and are out of the ring are forgotten: the map stays small.
    if (lane.tenants.size > 64 && lane.live === 0) lane.tenants.clear()
  }
}

function clamp(priority: number): number {
  return priority < 0 ? 0 : priority >= CLASS_COUNT ? CLASS_COUNT - 1 : priority
}
