// npm test: a process of its own (it mocks setTimeout, which work left running by files before it in a shared process also calls)
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Admission } from '../../../gateway/src/routing/admission.ts'
import { AdmissionSchema } from '../../../gateway/src/routing/config.ts'
import { classShares, LimitsSchema } from '../../../gateway/src/limits/index.ts'
import { PRIORITY_CLASS } from '../../../gateway/src/upstream/fair-queue.ts'
import type { Member } from '../../../gateway/src/routing/member.ts'
import { PodMetricsScraper } from '../../../gateway/src/routing/pod-metrics-scraper.ts'
import { startSimulator } from '../../../gateway/src/simulator/server.ts'
import { makeMember, makeMembers } from './helpers.ts'
import { eventually } from '../../helpers/eventually.ts'

const admission = (input: Record<string, unknown>) => new Admission(AdmissionSchema.parse(input), 2_000)

function queueOf(m: Member<null>, waiting: number, now = performance.now()): void {
  m.pod.update({ running: 8, waiting, kvUsage: 0.9 }, m.inFlight, now)
}

test('saturated only when every available member is past the threshold with fresh metrics', () => {
  const a = admission({ queueThreshold: 4 })
  const members = makeMembers(2)
  const now = performance.now()
  assert.equal(a.saturated(members, now), false, 'no metrics: never saturated')
  queueOf(members[0]!, 5, now)
  assert.equal(a.saturated(members, now), false)
  queueOf(members[1]!, 4, now)
  assert.equal(a.saturated(members, now), true)
  assert.equal(a.saturated(members, now + 10_000), false, 'stale metrics are no evidence')
  assert.equal(admission({ queueThreshold: 0 }).saturated(members, now), false, 'threshold 0 is off')
})

test('shed mode answers shed at once; hold mode holds up to maxHeld, then sheds', () => {
  const members = makeMembers(1)
  queueOf(members[0]!, 10)
  const now = performance.now()
  assert.equal(admission({ queueThreshold: 1, mode: 'shed' }).decide(members, now), 'shed')
  const a = admission({ queueThreshold: 1, maxHeld: 2, holdMs: 60_000 })
  const results: boolean[] = []
  for (let i = 0; i < 2; i++) {
    assert.equal(a.decide(members, now), 'hold')
    a.hold((ok) => results.push(ok))
  }
  assert.equal(a.decide(members, now), 'shed')
  a.endAll(false)
  assert.deepEqual(results, [false, false])
})

test('held requests go, oldest first, as soon as a member has room, and a newcomer does not overtake them', () => {
  const members = makeMembers(1)
  queueOf(members[0]!, 3)
  const a = admission({ queueThreshold: 2, holdMs: 60_000 })
  const order: string[] = []
  for (const name of ['first', 'second', 'third']) a.hold(() => {
    order.push(name)
    members[0]!.onStart(performance.now()) // dispatched: counts toward the queue estimate at once
  })
  queueOf(members[0]!, 3)
  a.release(members, performance.now())
  assert.deepEqual(order, [])
  assert.equal(a.decide(members, performance.now()), 'hold', 'still saturated')
  queueOf(members[0]!, 0)
  assert.equal(a.decide(members, performance.now()), 'hold', 'others are held: a newcomer waits behind them')
  a.release(members, performance.now())
  assert.deepEqual(order, ['first', 'second'], 'two go; the second fills the queue back to the threshold')
  a.endAll(false)
})

test('a held request is shed after holdMs', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const a = admission({ queueThreshold: 1, holdMs: 500 })
  let result: boolean | null = null
  a.hold((ok) => (result = ok))
  t.mock.timers.tick(499)
  assert.equal(result, null)
  t.mock.timers.tick(1)
  assert.equal(result, false)
  assert.equal(a.heldCount, 0)
})

test('the scraper reads a vLLM-mode simulator: queue and batch on member.pod, failures counted', async () => {
  const sim = await startSimulator({ vllm: { maxBatch: 1, stepMs: 50 }, tokens: 50 })
  const member = makeMember('pod')
  const dead = makeMember('dead')
  const urls = new Map([[member, sim.url], [dead, 'http://127.0.0.1:1']])
  let rounds = 0
  const scraper = new PodMetricsScraper<null>({
    members: () => [member, dead],
    fetch: async (m, signal) => {
      const res = await fetch(urls.get(m)! + '/metrics', { signal })
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`)
      return res.text()
    },
    intervalMs: 50,
    timeoutMs: 1_000,
    onRound: () => rounds++,
  })
  const aborts = [new AbortController(), new AbortController()]
  try {
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }], stream: true })
    const streams = aborts.map((c) => fetch(sim.url + '/v1/chat/completions', { method: 'POST', body, signal: c.signal }).catch(() => null))
    await Promise.all(streams)
    await scraper.scrapeOnce()
    assert.equal(member.pod.running, 1)
    assert.equal(member.pod.waiting, 1)
    assert.ok(member.pod.kvUsage > 0)
    assert.ok(member.pod.fresh(performance.now(), 2_000))
    assert.equal(dead.pod.failures, 1)
    assert.equal(dead.pod.scrapedAt, 0)
    scraper.start()
    await eventually(() => rounds >= 3, { what: 'rounds to repeat on the interval', intervalMs: 10 })
  } finally {
    scraper.stop()
    await scraper.settled()
    for (const c of aborts) c.abort()
    await sim.close()
  }
})

const { critical, high, normal, batch } = PRIORITY_CLASS

test('held requests go most important class first, and tenants of one class in turn', () => {
  const members = makeMembers(1)
  queueOf(members[0]!, 5)
  const a = admission({ queueThreshold: 2, holdMs: 60_000 })
  const order: string[] = []
  const hold = (name: string, priority: number, tenant: string) => a.hold(() => order.push(name), priority, tenant)
  hold('batch-a', batch, 'a')
  hold('normal-a1', normal, 'a')
  hold('normal-a2', normal, 'a')
  hold('normal-a3', normal, 'a')
  hold('normal-b1', normal, 'b')
  hold('critical-c', critical, 'c')
  hold('high-a', high, 'a')
  queueOf(members[0]!, 0)
  a.release(members, performance.now())
  assert.deepEqual(order, ['critical-c', 'high-a', 'normal-a1', 'normal-b1', 'normal-a2', 'normal-a3', 'batch-a'])
})

test('a newcomer waits behind held requests of its class or above, not behind less important ones', () => {
  const members = makeMembers(1)
  queueOf(members[0]!, 5)
  const a = admission({ queueThreshold: 2, holdMs: 60_000 })
  a.hold(() => {}, batch, 'a')
  queueOf(members[0]!, 0)
  const now = performance.now()
  assert.equal(a.decide(members, now, critical), 'admit', 'only a batch request is held')
  assert.equal(a.decide(members, now, batch), 'hold', 'the held batch request goes first')
  a.endAll(false)
})

test('each class sees its share of the threshold and of maxHeld; a full hold makes room by shedding a less important class', () => {
  const members = makeMembers(1)
  const shares = classShares(LimitsSchema.parse({ queueShares: { normal: 0.5, low: 0.5, batch: 0.25 } }).queueShares)
  const a = new Admission(AdmissionSchema.parse({ queueThreshold: 4, maxHeld: 4, holdMs: 60_000 }), 2_000, shares)
  assert.deepEqual(a.thresholds, [4, 4, 2, 2, 1])
  assert.deepEqual(a.holdBounds, [4, 4, 2, 2, 1])
  queueOf(members[0]!, 2)
  const now = performance.now()
  assert.equal(a.decide(members, now, high), 'admit', 'a queue of 2 is below high\'s threshold')
  assert.equal(a.decide(members, now, normal), 'hold', 'and at normal\'s')
  const results: string[] = []
  a.hold((ok) => results.push(`batch ${ok}`), batch, 'a')
  assert.equal(a.decide(members, now, batch), 'shed', 'batch may hold one')
  a.hold((ok) => results.push(`normal1 ${ok}`), normal, 'b')
  assert.equal(a.decide(members, now, normal), 'hold', 'normal is at its share, but the batch request can make room')
  a.hold((ok) => results.push(`normal2 ${ok}`), normal, 'b')
  assert.deepEqual(results, ['batch false'])
  assert.equal(a.heldCount, 2)
  assert.equal(a.decide(members, now, normal), 'shed', 'nothing less important left to shed')
  queueOf(members[0]!, 5)
  assert.equal(a.decide(members, now, critical), 'hold', 'critical may use the whole hold')
  a.hold((ok) => results.push(`critical1 ${ok}`), critical, 'c')
  a.hold((ok) => results.push(`critical2 ${ok}`), critical, 'c')
  assert.deepEqual(results, ['batch false'])
  a.hold((ok) => results.push(`critical3 ${ok}`), critical, 'c')
  assert.deepEqual(results, ['batch false', 'normal2 false'], 'the hold is full for critical (4): the newest normal one is shed')
  a.endAll(false)
})
