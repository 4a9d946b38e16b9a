import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CLAMP, PACE_ALPHA, PrefillPace, WARMUP_SAMPLES } from '../../../gateway/src/routing/prefill-pace.ts'

test('a pace is trusted only after the warm-up, and set to its median: one wild sample of three cannot set it', () => {
  const p = new PrefillPace(10_000)
  p.observe(10, 0)
  assert.equal(p.get(0), 0, 'one sample is not trusted')
  p.observe(120, 1) // a first token behind a stalled event loop
  assert.equal(p.get(1), 0)
  p.observe(11, 2)
  assert.equal(WARMUP_SAMPLES, 3)
  assert.equal(p.get(2), 11, 'the median of 10, 120 and 11')
})

test('a trusted pace moves toward a sample at most CLAMP times away, so one wild sample moves it by a fifth', () => {
  const p = new PrefillPace(10_000)
  for (let i = 0; i < WARMUP_SAMPLES; i++) p.observe(10, i)
  p.observe(1_000, 10)
  assert.equal(p.get(10), 10 + PACE_ALPHA * (10 * CLAMP - 10), 'clamped to 20 before the EWMA: 12')
  const q = new PrefillPace(10_000)
  for (let i = 0; i < WARMUP_SAMPLES; i++) q.observe(10, i)
  q.observe(0.01, 10)
  assert.equal(q.get(10), 10 + PACE_ALPHA * (10 / CLAMP - 10), 'and from below to 5: 9')
  q.observe(Number.NaN, 11)
  q.observe(-1, 11)
  q.observe(Number.POSITIVE_INFINITY, 11)
  assert.equal(q.get(11), 9, 'samples that are not positive finite numbers are ignored')
})

test('a pod that really became three times slower is seen within a few samples', () => {
  const p = new PrefillPace(10_000)
  for (let i = 0; i < WARMUP_SAMPLES; i++) p.observe(10, i)
  let samples = 0
  for (let t = 10; p.get(t) < 20; t++) {
    p.observe(30, t)
    samples++
  }
  assert.ok(samples <= 6, `${samples} samples to reach twice the old pace`)
})

test('a pace not confirmed for memoryMs is forgotten, and learned again through a new warm-up', () => {
  const p = new PrefillPace(2_000)
  for (let i = 0; i < WARMUP_SAMPLES; i++) p.observe(30, 1_000)
  assert.equal(p.get(3_000), 30)
  assert.equal(p.get(3_001), 0, 'forgotten 2 s after the last sample')
  // The old pace no longer clamps: the new samples set it, after a warm-up.
  p.observe(10, 4_000)
  assert.equal(p.get(4_000), 0)
  p.observe(10, 4_001)
  p.observe(10, 4_002)
  assert.equal(p.get(4_002), 10)
})

test('warm-up samples older than memoryMs do not count toward a new pace', () => {
  const p = new PrefillPace(2_000)
  p.observe(100, 0)
  p.observe(100, 1)
  p.observe(10, 5_000) // the two above are stale: this starts the warm-up over
  p.observe(10, 5_001)
  assert.equal(p.get(5_001), 0, 'two fresh samples only')
  p.observe(12, 5_002)
  assert.equal(p.get(5_002), 10, 'the median of the three fresh ones')
})
