/**
 * The byte-bounded LRU behind the exact and semantic stores: order, expiry, accounting, and that
 * every departing value is reported once to the owner's indexes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ByteLru, type EvictionCause } from '../../../gateway/src/cache/byte-lru.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'

interface Item {
  readonly name: string
  readonly bytes: number
  readonly expiresAt: number
}

function lru(maxBytes: number) {
  const evicted: EvictionCause[] = []
  const removed: Item[] = []
  const store = new ByteLru<Item>({
    maxBytes,
    costOf: (v) => v.bytes,
    expiresAt: (v) => v.expiresAt,
    onRemove: (v) => removed.push(v),
    onEvict: (cause) => evicted.push(cause),
  })
  return { store, evicted, removed }
}

const FAR = Date.now() + 3_600_000
const item = (name: string, bytes: number, expiresAt = FAR): Item => ({ name, bytes, expiresAt })

test('evicts the least recently used first; a get counts as a use', () => {
  const { store, evicted, removed } = lru(30)
  store.set('a', item('a', 10))
  store.set('b', item('b', 10))
  store.set('c', item('c', 10))
  assert.equal(store.get('a', 0)?.name, 'a') // a is now the most recent: b is the oldest
  store.set('d', item('d', 10))
  assert.equal(store.get('b', 0), null)
  assert.deepEqual(removed.map((v) => v.name), ['b'])
  assert.deepEqual(evicted, ['capacity'])
  assert.equal(store.bytes, 30)
  assert.equal(store.size, 3)
})

test('peek does not count as a use; touch does, only for the value still stored', () => {
  const { store } = lru(20)
  const a = item('a', 10)
  store.set('a', a)
  store.set('b', item('b', 10))
  assert.equal(store.peek('a', 0), a)
  store.set('c', item('c', 10)) // a was only peeked: it goes
  assert.equal(store.peek('a', 0), null)
  const b = store.peek('b', 0)!
  store.touch('b', item('b', 10)) // another value under the key: no effect
  store.touch('b', b)
  store.set('d', item('d', 10)) // c is now the oldest
  assert.equal(store.peek('c', 0), null)
  assert.equal(store.peek('b', 0), b)
})

test('an expired value is dropped when read and counted as expired', () => {
  const { store, evicted, removed } = lru(100)
  store.set('a', item('a', 10, 1_000))
  assert.equal(store.get('a', 999)?.name, 'a')
  assert.equal(store.peek('a', 1_000), null)
  assert.deepEqual(evicted, ['expired'])
  assert.deepEqual(removed.map((v) => v.name), ['a'])
  assert.equal(store.bytes, 0)
})

test('a value larger than the bound is refused and nothing is evicted for it', () => {
  const { store, removed } = lru(50)
  store.set('a', item('a', 40))
  assert.equal(store.set('big', item('big', 51)), false)
  assert.equal(store.size, 1)
  assert.deepEqual(removed, [])
})

test('replace keeps the LRU position, accounts the new cost, and refuses a stale current', () => {
  const { store } = lru(30)
  const a = item('a', 10)
  store.set('a', a)
  store.set('b', item('b', 10))
  assert.equal(store.replace('a', item('a', 10), item('a2', 4)), false)
  assert.equal(store.replace('a', a, item('a2', 4)), true)
  assert.equal(store.bytes, 14)
  store.set('c', item('c', 10))
  store.set('d', item('d', 10)) // 34 > 30: the oldest goes, which is still the replaced a
  assert.equal(store.peek('a', 0), null)
  assert.equal(store.bytes, 30)
})

test('deleteWhere removes exactly the matching values', () => {
  const { store, removed } = lru(1000)
  for (let i = 0; i < 10; i++) store.set(`k${i}`, item(i % 2 === 0 ? 'even' : 'odd', 10))
  assert.equal(store.deleteWhere((v) => v.name === 'even'), 5)
  assert.equal(store.size, 5)
  assert.equal(store.bytes, 50)
  assert.equal(removed.length, 5)
  assert.ok(removed.every((v) => v.name === 'even'))
})

test('over a random sequence of operations the total equals the stored costs and every value leaves once', () => {
  const random = seededRandom(11)
  const { store, removed } = lru(500)
  const added: Item[] = []
  for (let step = 0; step < 20_000; step++) {
    const key = `k${Math.floor(random() * 40)}`
    const r = random()
    const now = step
    if (r < 0.5) {
      const v = item(key, 1 + Math.floor(random() * 120), now + Math.floor(random() * 400))
      if (store.set(key, v)) added.push(v)
    } else if (r < 0.8) store.get(key, now)
    else if (r < 0.9) store.delete(key)
    else {
      const current = store.peek(key, now)
      const next = item(key, 1 + Math.floor(random() * 60), now + 200)
      if (current !== null && store.replace(key, current, next)) {
        added.push(next)
        removed.push(current) // replaced values leave without onRemove: count them here
      }
    }
    assert.ok(store.bytes <= 500)
  }
  let live = 0
  let liveBytes = 0
  const stillThere = new Set<Item>()
  for (let i = 0; i < 40; i++) {
    const v = store.peek(`k${i}`, 0)
    if (v !== null) {
      live++
      liveBytes += v.bytes
      stillThere.add(v)
    }
  }
  assert.equal(store.size, live)
  assert.equal(store.bytes, liveBytes)
  // Every value added either is still stored or left exactly once.
  const left = new Map<Item, number>()
  for (const v of removed) left.set(v, (left.get(v) ?? 0) + 1)
  for (const v of added) assert.equal((left.get(v) ?? 0) + (stillThere.has(v) ? 1 : 0), 1, v.name)
})
