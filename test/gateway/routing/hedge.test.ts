import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HedgeDelay } from '../../../gateway/src/routing/hedge.ts'
import { LatencyQuantile } from '../../../gateway/src/routing/latency-quantile.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { routingConfig } from './helpers.ts'

test('p95 of a known distribution within the bucket resolution', () => {
  const q = new LatencyQuantile({ quantile: 0.95, windowMs: 10_000 })
  const rng = seededRandom(3)
  const samples = Array.from({ length: 5_000 }, () => 10 + rng() * 190) // uniform 10..200 ms
  samples.forEach((s, i) => q.record(s, i))
  const exact = [...samples].sort((a, b) => a - b)[Math.ceil(0.95 * samples.length) - 1]!
  const est = q.get(5_000)!
  assert.ok(est >= exact && est <= exact * 1.06, `estimate ${est}, exact ${exact}`)
})

test('no estimate before minSamples; old windows age out', () => {
  const q = new LatencyQuantile({ quantile: 0.5, windowMs: 1_000, minSamples: 10 })
  for (let i = 0; i < 9; i++) q.record(100, 0)
  assert.equal(q.get(0), null)
  q.record(100, 0)
  assert.ok(Math.abs(q.get(0)! - 100) / 100 < 0.06)
  for (let i = 0; i < 20; i++) q.record(10, 1_500)
  assert.ok(q.get(1_500)! < 11, 'median now comes from the 20 new samples and the 10 old')
  assert.equal(q.get(4_000), null, 'two idle windows forget everything')
})

test('hedge delay: disabled, fixed, or p95 once known', () => {
  assert.equal(new HedgeDelay(routingConfig().hedge).delayMs(0), null)
  assert.equal(new HedgeDelay(routingConfig({ hedge: { enabled: true, delayMs: 300 } }).hedge).delayMs(0), 300)
  const h = new HedgeDelay(routingConfig({ hedge: { enabled: true } }).hedge)
  assert.equal(h.delayMs(0), null, 'cold start: do not hedge')
  for (let i = 0; i < 100; i++) h.record(i < 95 ? 50 : 900, i)
  const d = h.delayMs(100)!
  assert.ok(d >= 50 && d < 55, `p95 delay ${d}`)
})
