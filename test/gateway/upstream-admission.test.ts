import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AdmissionQueue, type Waiter } from '../../gateway/src/upstream/admission.ts'

function waiter(log: string[], name: string): Waiter & { gaveUp: boolean } {
  return { gaveUp: false, admitted: () => log.push(name) }
}

test('slots up to capacity, then a bounded FIFO queue, then full', () => {
  const q = new AdmissionQueue(2, 2, 1_000)
  const log: string[] = []
  assert.equal(q.admit(waiter(log, 'a')), 'now')
  assert.equal(q.admit(waiter(log, 'b')), 'now')
  assert.equal(q.admit(waiter(log, 'c')), 'queued')
  assert.equal(q.admit(waiter(log, 'd')), 'queued')
  assert.equal(q.admit(waiter(log, 'e')), 'full')
  assert.deepEqual([q.active, q.waiting], [2, 2])
  q.release()
  assert.deepEqual(log, ['c'])
  q.release()
  assert.deepEqual(log, ['c', 'd'])
  assert.deepEqual([q.active, q.waiting], [2, 0])
  q.release()
  q.release()
  assert.deepEqual([q.active, q.waiting], [0, 0])
})

test('a waiter that gave up is skipped and frees its place in the queue at once', () => {
  const q = new AdmissionQueue(1, 1, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'a'))
  const b = waiter(log, 'b')
  assert.equal(q.admit(b), 'queued')
  assert.equal(q.admit(waiter(log, 'c')), 'full')
  b.gaveUp = true
  q.left()
  assert.equal(q.admit(waiter(log, 'd')), 'queued')
  q.release()
  assert.deepEqual(log, ['d'])
  assert.deepEqual([q.active, q.waiting], [1, 0])
})

test('a newcomer never overtakes waiters while a slot is free for a moment', () => {
  const q = new AdmissionQueue(1, 4, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'a'))
  q.admit(waiter(log, 'b'))
  // b is admitted on release; a newcomer arriving after that waits behind nobody but b's slot.
  q.release()
  assert.deepEqual(log, ['b'])
  assert.equal(q.admit(waiter(log, 'c')), 'queued')
})

test('a long run keeps the queue storage bounded', () => {
  const q = new AdmissionQueue(1, 10, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'first'))
  for (let i = 0; i < 10_000; i++) {
    q.admit(waiter(log, String(i)))
    q.release()
  }
  assert.equal(log.length, 10_000)
  assert.ok((q as unknown as { queue: unknown[] }).queue.length <= 2048)
})
