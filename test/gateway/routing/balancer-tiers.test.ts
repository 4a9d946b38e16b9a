import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createBalancer } from '../../../gateway/src/routing/balancer.ts'
import { BALANCER_KINDS } from '../../../gateway/src/routing/config.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { countPicks, eject, makeMember } from './helpers.ts'

function tiered() {
  return [
    makeMember({ name: 'backup', priority: 1 }),
    makeMember({ name: 'primary-a', priority: 0 }),
    makeMember({ name: 'primary-b', priority: 0, weight: 2 }),
    makeMember({ name: 'last', priority: 2 }),
  ]
}

for (const kind of BALANCER_KINDS) {
  test(`${kind}: only the best tier with an available member serves`, () => {
    const b = createBalancer(kind, { random: seededRandom(4) })
    const members = tiered()
    let i = 0
    // Picks stay in flight so load-aware balancers see the load they placed.
    const pickAndStart = () => {
      const m = b.pick(members, `k${i++}`, null, 0)
      m?.onStart(0)
      return m
    }
    const names = () => new Set(countPicks(pickAndStart, 300).keys())
    assert.deepEqual(names(), new Set(['primary-a', 'primary-b']))
    eject(members[1]!, 0)
    assert.deepEqual(names(), new Set(['primary-b']), 'one primary left still holds the tier')
    members[2]!.setHealthy(false, 0)
    assert.deepEqual(names(), new Set(['backup']), 'fail over to tier 1')
    members[0]!.draining = true
    assert.deepEqual(names(), new Set(['last']))
    members[3]!.setHealthy(false, 0)
    assert.deepEqual(names(), new Set(['null']))
    members[2]!.setHealthy(true, 0)
    assert.deepEqual(names(), new Set(['primary-b']), 'back to the best tier as soon as it recovers')
  })

  test(`${kind}: excluding the tried members of a tier fails over to the next`, () => {
    const b = createBalancer(kind, { random: seededRandom(8) })
    const members = tiered()
    const tried = new Set([members[1]!, members[2]!])
    assert.equal(b.pick(members, 'key', tried, 0)?.name, 'backup')
  })
}
