import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBalancer } from '../../../gateway/src/routing/balancer.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { eject, makeMember, makeMembers } from './helpers.ts'

const KEYS = Array.from({ length: 20_000 }, (_, i) => `user-${i}`)

function assign(members: readonly ReturnType<typeof makeMember>[], now = 0): Map<string, string> {
  const b = createBalancer('consistent-hash', { random: seededRandom(1) })
  return new Map(KEYS.map((k) => [k, b.pick(members, k, null, now)!.name]))
}

test('the same key always goes to the same member, across balancer instances and array order', () => {
  const members = makeMembers(8)
  const first = assign(members)
  assert.deepEqual(assign(members), first)
  assert.deepEqual(assign([...members].reverse()), first)
})

test('keys spread roughly evenly', () => {
  const counts = new Map<string, number>()
  for (const name of assign(makeMembers(8)).values()) counts.set(name, (counts.get(name) ?? 0) + 1)
  const expected = KEYS.length / 8
  for (const [name, c] of counts) assert.ok(Math.abs(c - expected) / expected < 0.25, `${name}: ${c} keys, expected ~${expected}`)
})

test('removing one of N members moves only its keys, about 1/N of all', () => {
  for (const n of [4, 8, 16]) {
    const members = makeMembers(n)
    const before = assign(members)
    const removed = members[n - 1]!
    const after = assign(members.slice(0, n - 1))
    let moved = 0
    for (const [k, owner] of before) {
      if (after.get(k) !== owner) {
        moved++
        assert.equal(owner, removed.name, `key ${k} moved although its owner stayed`)
      }
    }
    const share = moved / KEYS.length
    assert.ok(share > 0.5 / n && share < 1.5 / n, `n=${n}: ${(share * 100).toFixed(1)}% of keys moved`)
  }
})

test('adding a member takes about 1/(N+1) of keys, all moving to it', () => {
  const members = makeMembers(9)
  const before = assign(members.slice(0, 8))
  const after = assign(members)
  let moved = 0
  for (const [k, owner] of before) {
    if (after.get(k) !== owner) {
      moved++
      assert.equal(after.get(k), 'm8')
    }
  }
  assert.ok(moved / KEYS.length > 0.05 && moved / KEYS.length < 0.17, `${moved} moved`)
})

test('an unavailable member\'s keys go to the next member on the ring and come back after', () => {
  const members = makeMembers(6)
  const before = assign(members)
  eject(members[2]!, 0)
  const during = assign(members, 1)
  for (const [k, owner] of before) {
    if (owner !== 'm2') assert.equal(during.get(k), owner)
    else assert.notEqual(during.get(k), 'm2')
  }
  assert.deepEqual(assign(members, 10 * 60_000), before, 'after the ejection the ring is as before')
})

test('heavier members own proportionally more keys', () => {
  const members = [makeMember({ name: 'big', weight: 3 }), makeMember('a'), makeMember('b')]
  let big = 0
  for (const owner of assign(members).values()) if (owner === 'big') big++
  const share = big / KEYS.length
  assert.ok(share > 0.5 && share < 0.7, `big owns ${share}`)
})

test('no key: spread like p2c; excluded owners fall through to the next', () => {
  const b = createBalancer('consistent-hash', { random: seededRandom(9) })
  const members = makeMembers(4)
  const seen = new Set<string>()
  for (let i = 0; i < 200; i++) seen.add(b.pick(members, null, null, 0)!.name)
  assert.equal(seen.size, 4)
  const owner = b.pick(members, 'user-1', null, 0)!
  const next = b.pick(members, 'user-1', new Set([owner]), 0)!
  assert.notEqual(next, owner)
  assert.equal(b.pick(members, 'user-1', new Set(members), 0), null)
})
