/**
 * The calls in flight: each added when it starts and removed when it finishes, counted by
 * readiness and shutdown, and visited by the gateway's deadline sweep and at shutdown.
 *
 * An array with each call's slot kept on the call (removal moves the last call into the slot),
 * not a Set. With a Set (one add and one delete per request), nearly every request's objects
 * lived through every young-generation collection under load until the next full one: at
 * 28-30k requests/s on 64 connections, 13-24 MB survived each scavenge (25% of a young
 * generation V8 had grown to 64 MB), each scavenge paused 17-24 ms, and a mark-compact ran every
 * second to free ~90 MB of promoted, finished requests. Nothing held them (a full GC found no
 * more calls than were in flight). With this list: 0.16 MB surviving, 0.7-0.8 ms pauses, a 16 MB
 * young generation, and 10-15% more requests per second. A Set churned the same way in a bare
 * process does not show it, so what made the gateway's Set keep them is not pinned down; the
 * gateway's measurements are in docs/benchmarks.md, "The in-flight Set".
 */
export interface Slotted {
  /** Index in the list while in it; -1 otherwise. */
  inFlightSlot: number
}

export class InFlight<T extends Slotted> {
  readonly #items: T[] = []

  get size(): number {
    return this.#items.length
  }

  add(item: T): void {
    if (item.inFlightSlot !== -1) return
    item.inFlightSlot = this.#items.length
    this.#items.push(item)
  }

  delete(item: T): void {
    const items = this.#items
    const slot = item.inFlightSlot
    if (slot === -1 || items[slot] !== item) return
    const last = items.pop()!
    if (last !== item) {
      items[slot] = last
      last.inFlightSlot = slot
    }
    item.inFlightSlot = -1
  }

  /** The items now (a copy: deleting while iterating is safe). */
  [Symbol.iterator](): Iterator<T> {
    return this.#items.slice()[Symbol.iterator]()
  }

  /**
   * Calls `visit` for each item, newest slot first; `visit` may delete the item it is given
   * (the one moved into its slot was visited already). Items added meanwhile are not visited.
   */
  forEach(visit: (item: T) => void): void {
    const items = this.#items
    for (let i = items.length - 1; i >= 0; i--) {
      visit(items[i]!)
      // A visit that took out more than its own item: go on from the end of what is left.
      if (i > items.length) i = items.length
    }
  }
}
