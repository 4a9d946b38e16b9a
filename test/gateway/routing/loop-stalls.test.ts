import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LoopStalls } from '../../../gateway/src/routing/loop-stalls.ts'

/** Ticks every 10 ms from `from` to `to` on a fake clock. */
function ticks(s: LoopStalls, from: number, to: number): void {
  for (let t = from; t <= to; t += 10) s.tick(t)
}

test('a tick that runs late records a stall; ordinary jitter does not', () => {
  const s = new LoopStalls(10, 5)
  ticks(s, 0, 100)
  s.tick(113) // 3 ms late: jitter
  assert.equal(s.between(0, 113), 0)
  s.tick(203) // 80 ms late: a stall from 123 to 203
  assert.equal(s.between(0, 203), 80)
  assert.equal(s.between(150, 203), 53, 'only the part after the interval began')
  ticks(s, 213, 303)
  assert.equal(s.between(203, 303), 0, 'a stall that ended before the interval')
  assert.equal(s.between(0, 200), 0, 'a stall reported after the interval ended is not in it')
})

test('a tick overdue now counts: the first token can be handled before the late timer runs', () => {
  const s = new LoopStalls(10, 5)
  ticks(s, 0, 100)
  assert.equal(s.between(50, 160), 50, 'the tick due at 110 has not run at 160')
  assert.equal(s.between(150, 160), 10)
  assert.equal(s.between(50, 112), 0, 'two ms overdue is jitter')
})

test('stalls add up over the interval, and the ring keeps the newest', () => {
  const s = new LoopStalls(10, 5, 4)
  s.tick(0)
  let t = 0
  for (let k = 0; k < 6; k++) {
    t += 30 // 20 ms late each time
    s.tick(t)
  }
  assert.equal(s.between(0, t), 4 * 20, 'four stalls kept of six')
  assert.equal(s.between(t - 45, t), 20 + 15, 'the last one, and the 15 ms of the one before that fall in the interval')
})
