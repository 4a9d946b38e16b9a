/**
 * The inference-routing scenario's own logic, without running it: which balancers a run compares
 * (VELOX_BENCH_ROUTING_BALANCERS / _VARIANTS) and the plan's session turns, which the moved-turn
 * count relies on.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { balancersOf, plan } from '../../../gateway/benchmarks/scenarios/inference-routing.ts'

test('balancers: all four by default; a chosen subset; variants added under their own labels', () => {
  assert.deepEqual(balancersOf({}).map(([label]) => label), ['round-robin', 'p2c-peak-ewma', 'consistent-hash', 'inference-aware'])
  assert.deepEqual(balancersOf({ VELOX_BENCH_ROUTING_BALANCERS: 'consistent-hash, inference-aware' }).map(([label]) => label), ['consistent-hash', 'inference-aware'])
  const withVariant = balancersOf({ VELOX_BENCH_ROUTING_BALANCERS: 'consistent-hash', VELOX_BENCH_ROUTING_VARIANTS: '{"ia-unbounded":{"boundedLoad":0}}' })
  assert.deepEqual(withVariant, [
    ['consistent-hash', 'consistent-hash', null],
    ['ia-unbounded', 'inference-aware', { boundedLoad: 0 }, null],
  ])
  assert.throws(() => balancersOf({ VELOX_BENCH_ROUTING_BALANCERS: 'least-latency' }), /unknown balancer "least-latency"/)
  // `gateway` is another entry point, not an override.
  const before = balancersOf({ VELOX_BENCH_ROUTING_BALANCERS: 'inference-aware', VELOX_BENCH_ROUTING_VARIANTS: '{"ia-before":{"gateway":"/elsewhere/gateway/src/main.ts"}}' })
  assert.deepEqual(before[1], ['ia-before', 'inference-aware', null, '/elsewhere/gateway/src/main.ts'])
  assert.throws(() => balancersOf({ VELOX_BENCH_ROUTING_VARIANTS: '{"x":{"gateway":1}}' }), /x.gateway must be a path/)
})

test('plan: every session\'s turns in order, each prompt extending the last', () => {
  const w = { name: 't', sessions: 5, turns: 3, window: 2, ratePerSecond: 10, system: () => 'system prompt', sessionKey: true, slowPod: false }
  const planned = plan(w, 1)
  assert.equal(planned.length, 15)
  for (let s = 0; s < 5; s++) {
    const turns = planned.filter((p) => p.session === s)
    assert.deepEqual(turns.map((p) => p.turn), [0, 1, 2])
    const bodies = turns.map((p) => JSON.parse(p.spec.body!.toString()) as { messages: unknown[] })
    assert.deepEqual(bodies[1]!.messages.slice(0, 2), bodies[0]!.messages, 'turn 1 starts with turn 0\'s prompt')
  }
})
