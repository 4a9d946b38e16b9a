import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBalancer } from '../../../gateway/src/routing/balancer.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { countPicks, eject, makeMember } from './helpers.ts'

test('smooth WRR interleaves like nginx (5,1,1 -> a a b a c a a)', () => {
  const b = createBalancer('weighted-round-robin')
  const members = [makeMember({ name: 'a', weight: 5 }), makeMember('b'), makeMember('c')]
  const seq = Array.from({ length: 14 }, () => b.pick(members, null, null, 0)!.name).join('')
  assert.equal(seq, 'aabacaaaabacaa')
})

test('WRR gives each member exactly its weight over every cycle, for random weights', () => {
  const rng = seededRandom(42)
  for (let trial = 0; trial < 50; trial++) {
    const n = 1 + Math.floor(rng() * 8)
    const members = Array.from({ length: n }, (_, i) => makeMember({ name: `m${i}`, weight: 1 + Math.floor(rng() * 10) }))
    const cycle = members.reduce((s, m) => s + m.weight, 0)
    const b = createBalancer('weighted-round-robin')
    for (let c = 0; c < 3; c++) {
      const counts = countPicks(() => b.pick(members, null, null, 0), cycle)
      for (const m of members) assert.equal(counts.get(m.name) ?? 0, m.weight, `trial ${trial} cycle ${c} member ${m.name}`)
    }
  }
})

test('WRR skips unavailable and excluded members and keeps the others exact', () => {
  const b = createBalancer('weighted-round-robin')
  const members = [makeMember({ name: 'a', weight: 3 }), makeMember({ name: 'b', weight: 2 }), makeMember({ name: 'c', weight: 4 })]
  eject(members[2]!, 0)
  const counts = countPicks(() => b.pick(members, null, null, 1), 50)
  assert.deepEqual(Object.fromEntries(counts), { a: 30, b: 20 })
  assert.equal(b.pick(members, null, new Set([members[0]!, members[1]!]), 1), null)
})

test('least-outstanding picks the idlest member, ties to the heavier, then rotating', () => {
  const b = createBalancer('least-outstanding')
  const [a, c, d] = [makeMember('a'), makeMember({ name: 'c', weight: 2 }), makeMember('d')]
  assert.equal(b.pick([a, c, d], null, null, 0), c, 'equal outstanding: heavier wins')
  c.onStart(0)
  c.onStart(0)
  a.onStart(0)
  assert.equal(b.pick([a, c, d], null, null, 0), d)
  // With no weights to separate them, sequential traffic still spreads over equal members.
  const even = [makeMember('x'), makeMember('y'), makeMember('z')]
  const counts = countPicks(() => b.pick(even, null, null, 0), 300)
  assert.deepEqual([...counts.values()], [100, 100, 100])
})

test('least-outstanding balances concurrent load exactly', () => {
  const b = createBalancer('least-outstanding')
  const members = [makeMember('a'), makeMember('b'), makeMember('c'), makeMember('d')]
  for (let i = 0; i < 40; i++) b.pick(members, null, null, 0)!.onStart(0)
  assert.deepEqual(members.map((m) => m.inFlight), [10, 10, 10, 10])
  members[1]!.onSuccess(0)
  members[1]!.onSuccess(0)
  assert.equal(b.pick(members, null, null, 0), members[1])
})
