/**
 * Which members recently served which prompt-prefix blocks, for one member group: the gateway's
 * own estimate of what each pod's prefix cache holds (llm-d's approximate prefix-cache scorer).
 * A member that served a request is assumed to hold its blocks; eviction on the pod is not seen,
 * so the index forgets on its own: it holds at most `capacity` blocks, least recently touched
 * dropped first, and at most `membersPerBlock` members per block, most recent first.
 *
 * Cost: a match walks the request's blocks until no member has the next one (one Map lookup per
 * block); recording touches every block of the request. Recency is refreshed only for entries
 * older than a quarter of the capacity, so hot blocks do not reshuffle the Map on every request.
 */
import type { Member } from './member.ts'

class Entry {
  members: Member<unknown>[]
  /** Insertion sequence when last moved to the young end. */
  seq: number
  /** Hash of the first block recorded after this one; -1 until one is. */
  child: number
  /** Two different blocks were recorded after this one: prompts part here. */
  branched: boolean

  constructor(seq: number) {
    this.members = []
    this.seq = seq
    this.child = -1
    this.branched = false
  }
}

export class PrefixIndex {
  readonly capacity: number
  readonly membersPerBlock: number
  private readonly entries = new Map<number, Entry>()
  private seq = 0
  /** matched[i]: leading blocks members[i] holds, for the last match() call. */
  matched: Uint16Array = new Uint16Array(16)
  /**
   * Leading blocks of the last match()'s prompt that other prompts share: up to the deepest block
   * recorded with two different next blocks (where conversations sharing a system prompt part),
   * or the whole prompt when it was recorded in full before (the same prompt again). The blocks
   * after it are private: a conversation's own history, which only its next turns will use.
   */
  sharedDepth = 0
  private readonly slots = new WeakMap<readonly Member<unknown>[], Map<Member<unknown>, number>>()

  constructor(capacity: number, membersPerBlock: number) {
    this.capacity = capacity
    this.membersPerBlock = membersPerBlock
  }

  get size(): number {
    return this.entries.size
  }

  /**
   * Fills `matched[i]` with how many leading blocks of `blocks` members[i] is believed to hold;
   * returns the best count.
   */
  match(blocks: Uint32Array, members: readonly Member<unknown>[]): number {
    const n = members.length
    if (this.matched.length < n) this.matched = new Uint16Array(Math.max(n, this.matched.length * 2))
    const matched = this.matched
    matched.fill(0, 0, n)
    let shared = 0
    const slot = this.slotsOf(members)
    let best = 0
    for (let b = 0; b < blocks.length; b++) {
      const entry = this.entries.get(blocks[b]!)
      if (entry === undefined) break
      let extended = false
      const holders = entry.members
      for (let k = 0; k < holders.length; k++) {
        const i = slot.get(holders[k]!)
        if (i !== undefined && matched[i] === b) {
          matched[i] = b + 1
          extended = true
        }
      }
      if (!extended) break
      if (entry.branched) shared = b + 1
      best = b + 1
    }
    this.sharedDepth = best === blocks.length ? best : shared
    return best
  }

  /** `member` was sent a request with these blocks: it will hold them. */
  record(blocks: Uint32Array, member: Member<unknown>): void {
    const entries = this.entries
    const refreshBefore = this.seq - (this.capacity >>> 2)
    let parent: Entry | null = null
    for (let b = 0; b < blocks.length; b++) {
      const h = blocks[b]!
      if (parent !== null && !parent.branched) {
        if (parent.child === -1) parent.child = h
        else if (parent.child !== h) parent.branched = true
      }
      let entry = entries.get(h)
      if (entry === undefined) {
        entry = new Entry(++this.seq)
        entries.set(h, entry)
        if (entries.size > this.capacity) entries.delete(entries.keys().next().value as number)
      } else if (entry.seq < refreshBefore) {
        entries.delete(h)
        entry.seq = ++this.seq
        entries.set(h, entry)
      }
      parent = entry
      const holders = entry.members
      if (holders[0] === member) continue
      const at = holders.indexOf(member)
      if (at !== -1) holders.splice(at, 1)
      else if (holders.length >= this.membersPerBlock) holders.pop()
      holders.unshift(member)
    }
  }

  private slotsOf(members: readonly Member<unknown>[]): Map<Member<unknown>, number> {
    let slot = this.slots.get(members)
    if (slot === undefined) {
      slot = new Map(members.map((m, i) => [m, i]))
      this.slots.set(members, slot)
    }
    return slot
  }
}
