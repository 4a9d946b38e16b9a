import assert from 'node:assert/strict'
import { test } from 'node:test'
import { RetryBudget } from '../../../gateway/src/routing/retry-budget.ts'
import { RetryPolicy } from '../../../gateway/src/routing/retry-policy.ts'
import { seededRandom } from '../../../gateway/src/routing/rng.ts'
import { routingConfig } from './helpers.ts'

test('under sustained failure retries never exceed ratio * requests (+ the per-second reserve) in any window', () => {
  const ratio = 0.2
  const minPerSecond = 10
  const ttlMs = 10_000
  const budget = new RetryBudget({ ratio, minPerSecond, ttlMs })
  const rng = seededRandom(2)
  // 500 requests per second for two minutes, every attempt fails and asks for 2 more attempts.
  const events: { t: number; retry: boolean }[] = []
  let t = 0
  while (t < 120_000) {
    t += 2 * rng() * 2 // mean 2 ms
    budget.recordRequest(t)
    events.push({ t, retry: false })
    for (let attempt = 1; attempt < 3; attempt++) {
      if (!budget.tryRetry(t)) break
      events.push({ t, retry: true })
    }
  }
  const requests = events.filter((e) => !e.retry).length
  const retries = events.length - requests
  // Long run: the ratio dominates; the reserve adds minPerSecond.
  const expected = ratio * requests + minPerSecond * 120
  assert.ok(retries <= expected + minPerSecond * (ttlMs / 1000), `${retries} retries for ${requests} requests`)
  assert.ok(retries >= ratio * requests * 0.9, `budget too stingy: ${retries} retries for ${requests} requests`)
  // Every sliding window of ttlMs: retries <= ratio * requests in it + reserve.
  for (let start = 0; start + ttlMs <= 120_000; start += 500) {
    let req = 0
    let ret = 0
    for (const e of events) {
      if (e.t < start || e.t >= start + ttlMs) continue
      if (e.retry) ret++
      else req++
    }
    // Slot granularity (1 s) lets a deposit count up to one slot longer than ttlMs.
    const bound = ratio * req * (1 + 1 / 10) + minPerSecond * (ttlMs / 1000) + 1
    assert.ok(ret <= bound, `window at ${start}: ${ret} retries for ${req} requests (bound ${bound.toFixed(1)})`)
  }
})

test('ratio 0.2 allows one retry per five requests', () => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 0 })
  assert.equal(budget.canRetry(0), false)
  for (let i = 0; i < 4; i++) budget.recordRequest(0)
  assert.equal(budget.canRetry(0), false)
  budget.recordRequest(0)
  assert.equal(budget.tryRetry(0), true)
  assert.equal(budget.tryRetry(0), false)
})

test('the reserve allows minPerSecond retries per second at no traffic, refilling as slots expire', () => {
  const budget = new RetryBudget({ ratio: 0.2, minPerSecond: 2, ttlMs: 10_000 })
  let granted = 0
  while (budget.tryRetry(0)) granted++
  assert.equal(granted, 20, 'minPerSecond * ttl seconds')
  assert.equal(budget.canRetry(5_000), false)
  assert.equal(budget.canRetry(10_000), true, 'withdrawals expire with their slot')
})

test('deposits expire after the window', () => {
  const budget = new RetryBudget({ ratio: 1, minPerSecond: 0, ttlMs: 1_000, slots: 10 })
  for (let i = 0; i < 5; i++) budget.recordRequest(0)
  assert.equal(budget.available(900), 5)
  assert.equal(budget.available(1_000), 0)
  assert.equal(budget.tryRetry(1_000), false)
})

test('retry policy: retryable kinds, attempt limit, budget', () => {
  const policy = new RetryPolicy(routingConfig({ retry: { maxAttempts: 3, on: ['connect', '5xx'], budgetRatio: 0, budgetMinPerSecond: 1 } }).retry)
  assert.equal(policy.retryable('connect'), true)
  assert.equal(policy.retryable('timeout'), false)
  assert.equal(policy.shouldRetry('timeout', 1, 0), false)
  assert.equal(policy.shouldRetry('5xx', 3, 0), false, 'the last attempt has been made')
  let granted = 0
  while (policy.shouldRetry('connect', 1, 0)) granted++
  assert.equal(granted, 10, 'the budget caps retries: 1/s reserve over a 10 s window')
})
