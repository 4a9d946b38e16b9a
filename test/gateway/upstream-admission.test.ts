import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AdmissionQueue, type Waiter } from '../../gateway/src/upstream/admission.ts'
import { NORMAL_CLASS, PRIORITY_CLASS } from '../../gateway/src/upstream/fair-queue.ts'
import { classShares, LimitsSchema } from '../../gateway/src/limits/index.ts'

function waiter(log: string[], name: string, priority = NORMAL_CLASS, tenant = 'default'): Waiter & { gaveUp: boolean } {
  return { gaveUp: false, priority, tenant, admitted: () => log.push(name), shed: () => log.push(`${name} shed`) }
}

test('slots up to capacity, then a bounded FIFO queue, then full', () => {
  const q = new AdmissionQueue(2, 2, 1_000)
  const log: string[] = []
  assert.equal(q.admit(waiter(log, 'a')), 'now')
  assert.equal(q.admit(waiter(log, 'b')), 'now')
  assert.equal(q.admit(waiter(log, 'c')), 'queued')
  assert.equal(q.admit(waiter(log, 'd')), 'queued')
  assert.equal(q.admit(waiter(log, 'e')), 'full')
  assert.deepEqual([q.inFlight, q.waiting], [2, 2])
  q.release()
  assert.deepEqual(log, ['c'])
  q.release()
  assert.deepEqual(log, ['c', 'd'])
  assert.deepEqual([q.inFlight, q.waiting], [2, 0])
  q.release()
  q.release()
  assert.deepEqual([q.inFlight, q.waiting], [0, 0])
})

test('a waiter that gave up is skipped and frees its place in the queue at once', () => {
  const q = new AdmissionQueue(1, 1, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'a'))
  const b = waiter(log, 'b')
  assert.equal(q.admit(b), 'queued')
  assert.equal(q.admit(waiter(log, 'c')), 'full')
  b.gaveUp = true
  q.left(b)
  assert.equal(q.admit(waiter(log, 'd')), 'queued')
  q.release()
  assert.deepEqual(log, ['d'])
  assert.deepEqual([q.inFlight, q.waiting], [1, 0])
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
  assert.ok((q as unknown as { queue: { size: number } }).queue.size <= 10)
  assert.equal(q.waiting, 0)
})

const { critical, high, normal, low, batch } = PRIORITY_CLASS

test('a free slot goes to the most important class waiting, whatever the arrival order', () => {
  const q = new AdmissionQueue(1, 10, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'running'))
  q.admit(waiter(log, 'batch', batch))
  q.admit(waiter(log, 'normal', normal))
  q.admit(waiter(log, 'critical', critical))
  q.admit(waiter(log, 'low', low))
  q.admit(waiter(log, 'high', high))
  for (let i = 0; i < 5; i++) q.release()
  assert.deepEqual(log, ['critical', 'high', 'normal', 'low', 'batch'])
})

test('within a class, tenants take turns: one tenant\'s burst does not wait in front of another', () => {
  const q = new AdmissionQueue(1, 100, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'running'))
  for (let i = 1; i <= 6; i++) q.admit(waiter(log, `a${i}`, normal, 'a'))
  q.admit(waiter(log, 'b1', normal, 'b'))
  q.admit(waiter(log, 'b2', normal, 'b'))
  q.admit(waiter(log, 'c1', normal, 'c'))
  for (let i = 0; i < 9; i++) q.release()
  assert.deepEqual(log, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a5', 'a6'])
})

test('lower classes fill only their share of the queue; the rest is kept for the classes above', () => {
  const shares = classShares(LimitsSchema.parse({}).queueShares) // low 0.5, batch 0.25
  const q = new AdmissionQueue(1, 8, 1_000, shares)
  assert.deepEqual(q.bounds, [8, 8, 8, 4, 2])
  const log: string[] = []
  q.admit(waiter(log, 'running'))
  assert.equal(q.admit(waiter(log, 'batch1', batch)), 'queued')
  assert.equal(q.admit(waiter(log, 'batch2', batch)), 'queued')
  assert.equal(q.fullFor(batch), true)
  assert.equal(q.admit(waiter(log, 'batch3', batch)), 'full', 'batch may fill a quarter of the queue')
  assert.equal(q.admit(waiter(log, 'low1', low)), 'queued')
  assert.equal(q.admit(waiter(log, 'low2', low)), 'queued')
  // The queue holds four: low is at its share, and may only take a batch request's place.
  assert.equal(q.admit(waiter(log, 'low3', low)), 'queued')
  assert.deepEqual(log, ['batch2 shed'])
  for (let i = 0; i < 4; i++) assert.equal(q.admit(waiter(log, `normal${i}`, normal)), 'queued')
  assert.equal(q.fullFor(normal), false, 'a batch waiter can still make room')
  assert.equal(q.admit(waiter(log, 'normal4', normal)), 'queued')
  assert.deepEqual(log, ['batch2 shed', 'batch1 shed'])
  for (let i = 5; i <= 7; i++) assert.equal(q.admit(waiter(log, `normal${i}`, normal)), 'queued', 'then the low ones, newest first')
  assert.deepEqual(log, ['batch2 shed', 'batch1 shed', 'low3 shed', 'low2 shed', 'low1 shed'])
  assert.equal(q.waiting, 8)
  assert.equal(q.admit(waiter(log, 'normal8', normal)), 'full', 'nothing below normal is left')
  assert.equal(q.admit(waiter(log, 'critical', critical)), 'queued', 'critical takes a normal request\'s place')
  assert.equal(log.at(-1), 'normal7 shed')
  assert.equal(q.fullFor(normal), true)
  assert.equal(q.fullFor(critical), false, 'critical can still take a normal request\'s place')
})

test('the request shed for a more important one is the newest of the tenant with most waiting', () => {
  const q = new AdmissionQueue(1, 4, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'running'))
  q.admit(waiter(log, 'a1', batch, 'a'))
  q.admit(waiter(log, 'b1', batch, 'b'))
  q.admit(waiter(log, 'b2', batch, 'b'))
  q.admit(waiter(log, 'b3', batch, 'b'))
  q.admit(waiter(log, 'x', high, 'x'))
  q.admit(waiter(log, 'y', high, 'y'))
  assert.deepEqual(log, ['b3 shed', 'b2 shed'])
  for (let i = 0; i < 4; i++) q.release()
  assert.deepEqual(log, ['b3 shed', 'b2 shed', 'x', 'y', 'a1', 'b1'])
})

test('waiters that gave up are skipped in every lane, and the counts stay exact', () => {
  const q = new AdmissionQueue(1, 10, 1_000)
  const log: string[] = []
  q.admit(waiter(log, 'running'))
  const gone = [waiter(log, 'g1', high, 'a'), waiter(log, 'g2', normal, 'b')]
  for (const w of gone) q.admit(w)
  q.admit(waiter(log, 'stays', normal, 'b'))
  for (const w of gone) {
    w.gaveUp = true
    q.left(w)
  }
  assert.equal(q.waiting, 1)
  assert.equal(q.waitingIn(high), 0)
  q.release()
  assert.deepEqual(log, ['stays'])
  assert.equal(q.waiting, 0)
})
