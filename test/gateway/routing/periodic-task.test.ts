/** PeriodicTask: the loop behind active health checks and DNS discovery, on a mocked clock. */
// npm test: a process of its own (it mocks setTimeout, which work left running by files before it in a shared process also calls)
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { PeriodicTask } from '../../../gateway/src/routing/periodic-task.ts'

const flush = () => new Promise<void>((r) => setImmediate(r))

/** A task on a mocked clock whose every run waits for `release()`; `runs()` counts runs started. */
function gatedTask(t: TestContext): { task: PeriodicTask; runs: () => number; release: () => void } {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  let runs = 0
  let release: (() => void) | null = null
  const task = new PeriodicTask(() => {
    runs++
    return new Promise<void>((r) => (release = r))
  }, () => 100)
  return { task, runs: () => runs, release: () => release!() }
}

test('runs now, then a delay after each run settles; runNow shares the run in flight; nothing after stop()', async (t) => {
  const { task, runs, release } = gatedTask(t)
  const first = task.start()
  assert.equal(runs(), 1, 'the first run starts at once')
  assert.equal(task.start(), task.runNow(), 'start() again and runNow() share the run in flight')
  t.mock.timers.tick(1_000)
  assert.equal(runs(), 1, 'no second run while the first is in flight')
  release()
  await first
  await flush()
  t.mock.timers.tick(99)
  assert.equal(runs(), 1)
  t.mock.timers.tick(1)
  assert.equal(runs(), 2, 'the next run comes the delay after the previous one settled')
  release()
  await flush()
  task.stop()
  t.mock.timers.tick(1_000)
  assert.equal(runs(), 2, 'no run after stop()')
  assert.equal(task.running, false)
})

test('stop() and start() again while a run is in flight: one loop goes on, not two, and stop() ends it', async (t) => {
  const { task, runs, release } = gatedTask(t)
  void task.start()
  task.stop()
  const restarted = task.start()
  assert.equal(runs(), 1, 'the restart shares the run still in flight')
  release()
  await restarted
  await flush()
  for (let i = 0; i < 5; i++) {
    t.mock.timers.tick(100)
    assert.equal(runs(), 2 + i, `one run per delay (tick ${i + 1})`)
    release()
    await flush()
  }
  // Two loops would share each run (runNow), so the count above cannot tell them apart; the
  // second loop's timer is the one stop() would not know of.
  task.stop()
  t.mock.timers.tick(1_000)
  assert.equal(runs(), 6, 'no run after stop()')
})
