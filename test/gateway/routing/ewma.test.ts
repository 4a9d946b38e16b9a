import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PeakEwma } from '../../../gateway/src/routing/ewma.ts'

const close = (actual: number, expected: number, eps = 1e-9): void => assert.ok(Math.abs(actual - expected) <= eps, `${actual} != ${expected}`)

test('the first sample becomes the estimate', () => {
  const e = new PeakEwma(10_000)
  assert.equal(e.get(0), 0)
  e.observe(42, 1_000)
  close(e.get(1_000), 42)
})

test('a peak replaces the estimate at once', () => {
  const e = new PeakEwma(10_000)
  e.observe(10, 0)
  e.observe(500, 1)
  close(e.get(1), 500)
})

test('the estimate decays with wall time, halving every tau * ln 2', () => {
  const tau = 10_000
  const e = new PeakEwma(tau)
  e.observe(100, 0)
  close(e.get(tau * Math.LN2), 50, 1e-6)
  close(e.get(2 * tau * Math.LN2), 25, 1e-6)
})

test('a lower sample moves the estimate by 1 - exp(-elapsed / tau)', () => {
  const tau = 1_000
  const e = new PeakEwma(tau)
  e.observe(100, 0)
  e.observe(20, 500)
  const w = Math.exp(-0.5)
  close(e.get(500), 100 * w + 20 * (1 - w))
  // Samples arriving at the same instant carry no weight: only time moves a peak down.
  const f = new PeakEwma(tau)
  f.observe(100, 0)
  for (let i = 0; i < 1000; i++) f.observe(1, 0)
  close(f.get(0), 100)
})

test('a clock that goes backwards neither throws nor grows the estimate', () => {
  const e = new PeakEwma(1_000)
  e.observe(100, 5_000)
  e.observe(10, 4_000)
  close(e.get(4_000), 100)
  assert.ok(e.get(6_000) < 100)
})

test('rejects a non-positive decay', () => {
  assert.throws(() => new PeakEwma(0), RangeError)
})
