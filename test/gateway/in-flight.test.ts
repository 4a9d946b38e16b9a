/**
 * The calls in flight (proxy/in-flight.ts): O(1) add and delete by the slot kept on each item,
 * a count, iteration over a copy, and a visit that lets the visited item delete itself, as the
 * gateway's deadline sweep and shutdown do.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { seededRandom } from '../../gateway/src/routing/rng.ts'
import { InFlight } from '../../gateway/src/proxy/in-flight.ts'

class Item {
  inFlightSlot = -1
  readonly id: number
  constructor(id: number) {
    this.id = id
  }
}

const ids = (list: InFlight<Item>): number[] => [...list].map((i) => i.id).sort((a, b) => a - b)

test('random adds and deletes keep the same members as a Set, slots consistent', () => {
  const random = seededRandom(7)
  const list = new InFlight<Item>()
  const model = new Set<Item>()
  const pool = Array.from({ length: 50 }, (_, i) => new Item(i))
  for (let step = 0; step < 20_000; step++) {
    const item = pool[Math.floor(random() * pool.length)]!
    if (random() < 0.5) {
      list.add(item)
      model.add(item)
    } else {
      list.delete(item)
      model.delete(item)
    }
    assert.equal(list.size, model.size)
  }
  assert.deepEqual(ids(list), [...model].map((i) => i.id).sort((a, b) => a - b))
  for (const item of pool) assert.equal(item.inFlightSlot === -1, !model.has(item), `item ${item.id}`)
  // Adding twice or deleting what is not there changes nothing.
  const extra = new Item(99)
  list.delete(extra)
  list.add(extra)
  list.add(extra)
  assert.equal(list.size, model.size + 1)
})

test('a visit may delete the item it is given: every item is visited once', () => {
  const list = new InFlight<Item>()
  const items = Array.from({ length: 10 }, (_, i) => new Item(i))
  for (const item of items) list.add(item)
  const visited: number[] = []
  list.forEach((item) => {
    visited.push(item.id)
    if (item.id % 3 === 0) list.delete(item)
  })
  assert.deepEqual([...visited].sort((a, b) => a - b), items.map((i) => i.id))
  assert.deepEqual(ids(list), [1, 2, 4, 5, 7, 8])
  // All of them, as shutdown aborts every call.
  list.forEach((item) => list.delete(item))
  assert.equal(list.size, 0)
  // Iteration is over a copy: deleting while iterating is safe.
  for (const item of items) list.add(item)
  for (const item of list) list.delete(item)
  assert.equal(list.size, 0)
})
