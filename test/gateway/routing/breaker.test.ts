import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Breaker, BreakerState } from '../../../gateway/src/routing/breaker.ts'
import { eject, makeMember, routingConfig } from './helpers.ts'

const outlier = { consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 5_000 }

function failTimes(b: Breaker, n: number, now: number): void {
  for (let i = 0; i < n; i++) b.onFailure(now)
}

test('closed -> open after N consecutive failures; a success in between resets the count', () => {
  const b = new Breaker(outlier)
  failTimes(b, 2, 0)
  b.onSuccess(0)
  failTimes(b, 2, 0)
  assert.equal(b.state, BreakerState.CLOSED)
  assert.ok(b.allows(0))
  b.onFailure(10)
  assert.equal(b.state, BreakerState.OPEN)
  assert.equal(b.openUntil, 1_010)
  assert.equal(b.allows(1_009), false)
  assert.equal(b.allows(1_010), true)
})

test('half-open lets exactly one probe through; success closes', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onStart(1_000)
  assert.equal(b.state, BreakerState.HALF_OPEN)
  assert.equal(b.allows(1_000), false, 'a second request must wait for the probe')
  b.onSuccess(1_100)
  assert.equal(b.state, BreakerState.CLOSED)
  assert.ok(b.allows(1_100))
})

test('a probe whose outcome is never reported stops blocking after maxEjectionMs', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onStart(1_000)
  assert.equal(b.allows(5_999), false)
  assert.equal(b.allows(6_000), true)
  b.onStart(6_000)
  assert.equal(b.allows(6_001), false, 'the new probe holds the slot again')
  b.onSuccess(6_100)
  assert.equal(b.state, BreakerState.CLOSED)
})

test('failed probes double the ejection up to the cap', () => {
  const b = new Breaker(outlier)
  let now = 0
  failTimes(b, 3, now)
  const ejections: number[] = [b.openUntil - now]
  for (let i = 0; i < 5; i++) {
    now = b.openUntil
    b.onStart(now)
    b.onFailure(now)
    ejections.push(b.openUntil - now)
  }
  assert.deepEqual(ejections, [1_000, 2_000, 4_000, 5_000, 5_000, 5_000])
})

test('the doubling continues across a short recovery and resets after maxEjectionMs closed', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onStart(1_000)
  b.onSuccess(1_000)
  failTimes(b, 3, 2_000) // closed only 1 s: flapping
  assert.equal(b.openUntil - 2_000, 2_000)
  b.onStart(4_000)
  b.onSuccess(4_000)
  failTimes(b, 3, 9_000) // closed 5 s = maxEjectionMs: forgiven
  assert.equal(b.openUntil - 9_000, 1_000)
})

test('late results of requests sent before the ejection do not close or extend it', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onSuccess(10)
  b.onFailure(20)
  assert.equal(b.state, BreakerState.OPEN)
  assert.equal(b.openUntil, 1_000)
})

test('a cancelled probe hands the probe to the next request', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onStart(1_500)
  b.onCancel(1_600)
  assert.equal(b.state, BreakerState.OPEN)
  assert.ok(b.allows(1_600))
})

test('a passing active check ends an ejection early but does not close the breaker', () => {
  const b = new Breaker(outlier)
  failTimes(b, 3, 0)
  b.onActiveHealthy(200)
  assert.equal(b.state, BreakerState.OPEN)
  assert.ok(b.allows(200))
})

test('member: 429 never ejects, 5xx does; both raise the latency estimate', () => {
  const cfg = routingConfig({ outlier })
  const m = makeMember('a', cfg)
  m.onStart(0)
  m.onFirstByte(20, 0)
  m.onSuccess(0)
  for (let i = 0; i < 10; i++) {
    m.onStart(i)
    m.onFailure('429', i, 5)
  }
  assert.ok(m.available(10))
  assert.ok(m.ewma.get(10) > 990, 'a failure costs about the failure penalty, not its own 5 ms')
  assert.equal(m.inFlight, 0)
  eject(m, 20)
  assert.equal(m.available(20), false)
  assert.equal(m.ejectedUntil, 1_020)
  assert.equal(m.failed, 13)
  assert.equal(m.lastFailure, '5xx')
})

test('member: unhealthy or draining members are unavailable; healthy again ends an ejection', () => {
  const m = makeMember('a', routingConfig({ outlier }))
  m.setHealthy(false, 0)
  assert.equal(m.available(0), false)
  eject(m, 0)
  m.setHealthy(true, 100)
  assert.ok(m.available(100), 'active recovery lets the next request probe')
  m.draining = true
  assert.equal(m.available(100), false)
})
