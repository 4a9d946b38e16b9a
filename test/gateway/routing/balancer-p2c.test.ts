import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBalancer } from '../../../gateway/src/routing/balancer.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { countPicks, eject, makeMember, makeMembers, simulate } from './helpers.ts'

function slowMemberShare(kind: 'p2c-peak-ewma' | 'weighted-round-robin', seed: number): { slow: number; fast: number[] } {
  const rng = seededRandom(seed)
  const balancer = createBalancer(kind, { random: rng })
  const members = makeMembers(4)
  const requests = 20_000
  const counts = simulate((ms, key, now) => balancer.pick(ms, key, null, now), members, {
    requests,
    intervalMs: 1,
    // m3 is ten times slower; every latency jitters by +-20%.
    latencyOf: (m) => (m.name === 'm3' ? 200 : 20) * (0.8 + 0.4 * rng()),
  })
  return { slow: counts.get('m3')! / requests, fast: ['m0', 'm1', 'm2'].map((n) => counts.get(n)! / requests) }
}

test('p2c shifts load away from a slow member', () => {
  for (const seed of [1, 2, 3]) {
    const { slow, fast } = slowMemberShare('p2c-peak-ewma', seed)
    assert.ok(slow < 0.2, `seed ${seed}: slow member got ${(slow * 100).toFixed(1)}% of requests`)
    for (const share of fast) assert.ok(share > 0.25, `seed ${seed}: a fast member got only ${(share * 100).toFixed(1)}%`)
  }
})

test('the same simulation gives a latency-blind balancer its even 25%, so the p2c bound means something', () => {
  const { slow } = slowMemberShare('weighted-round-robin', 1)
  assert.ok(Math.abs(slow - 0.25) < 0.01, `round robin sent ${slow} to the slow member`)
})

test('p2c prefers the member with fewer outstanding requests at equal latency', () => {
  const b = createBalancer('p2c-peak-ewma', { random: seededRandom(7) })
  const [a, c] = [makeMember('a'), makeMember('c')]
  for (const m of [a, c]) {
    m.onStart(0)
    m.onFirstByte(50, 0)
    m.onSuccess(0)
  }
  for (let i = 0; i < 5; i++) a.onStart(0)
  const counts = countPicks(() => b.pick([a, c], null, null, 0), 100)
  assert.equal(counts.get('c'), 100)
})

test('a member with requests in flight but no latency yet is not flooded', () => {
  const b = createBalancer('p2c-peak-ewma', { random: seededRandom(3) })
  const known = makeMember('known')
  known.onStart(0)
  known.onFirstByte(500, 0)
  known.onSuccess(0)
  const fresh = makeMember('fresh')
  assert.equal(b.pick([known, fresh], null, null, 0), fresh, 'an idle unknown member costs 0')
  fresh.onStart(0)
  assert.equal(b.pick([known, fresh], null, null, 0), known, 'until it has a request in flight')
})

test('p2c samples by weight when loads are equal', () => {
  const b = createBalancer('p2c-peak-ewma', { random: seededRandom(11) })
  const members = [makeMember({ name: 'heavy', weight: 3 }), makeMember('light1'), makeMember('light2')]
  // Equal loads: the pair's first sample wins ties, so choices follow the weighted sampling.
  const counts = countPicks(() => b.pick(members, null, null, 0), 50_000)
  const heavy = counts.get('heavy')! / 50_000
  assert.ok(heavy > 0.55 && heavy < 0.65, `heavy got ${heavy}, expected ~0.6`)
})

test('p2c never picks an excluded or unavailable member, and returns null when none is left', () => {
  const b = createBalancer('p2c-peak-ewma', { random: seededRandom(5) })
  const members = makeMembers(3)
  eject(members[0]!, 0)
  const exclude = new Set([members[1]!])
  const counts = countPicks(() => b.pick(members, null, exclude, 1), 1000)
  assert.deepEqual([...counts], [['m2', 1000]])
  exclude.add(members[2]!)
  assert.equal(b.pick(members, null, exclude, 1), null)
  assert.equal(b.pick([], null, null, 1), null)
})
