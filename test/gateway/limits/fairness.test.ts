/**
 * Priority and fairness when upstreams saturate, end to end: real gateways in front of the
 * simulator, keys of different priority classes and tenants sending concurrently. An upstream's
 * bounded queue serves the most important class first and tenants of a class in turn, keeps room
 * for the classes above a less important one, and sheds lower classes first; a saturated
 * inference-aware fleet sheds lower classes at a lower queue depth and releases held requests by
 * class. Every wait below polls the gateway's own state; no sleep stands in for an event.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { eventually } from '../../helpers/eventually.ts'
import { hashKey } from '../../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { PRIORITY_CLASS } from '../../../gateway/src/upstream/fair-queue.ts'
import type { AdmissionQueue } from '../../../gateway/src/upstream/admission.ts'
import { chatBody, post, startGateway, type TestGateway } from '../../helpers/gateway.ts'

let slow: Simulator
before(async () => {
  // Plain answers come after 40 ms; a stream of its 1,000 tokens takes 50 s (see occupy()).
  slow = await startSimulator({ ttftMs: 40, interTokenMs: 50, tokens: 1_000 })
})
after(async () => {
  await slow.close()
})

async function until(what: string, check: () => boolean, ms = 15_000): Promise<void> {
  await eventually(check, { what, timeoutMs: ms, intervalMs: 5 })
}

const keys = [
  { name: 'a-normal', hash: hashKey('sk-a-normal'), tenant: 'a' },
  { name: 'a-batch', hash: hashKey('sk-a-batch'), tenant: 'a', priority: 'batch' as const },
  { name: 'b-normal', hash: hashKey('sk-b-normal'), tenant: 'b' },
  { name: 'b-critical', hash: hashKey('sk-b-critical'), tenant: 'b', priority: 'critical' as const },
  { name: 'c-normal', hash: hashKey('sk-c-normal'), tenant: 'c' },
]

interface Answer {
  readonly name: string
  readonly status: number
  readonly code: string | null
  readonly retryAfter: string | null
}

/** Sends one request as `key`; its answer is appended to `done` when it ends, so `done` is the finishing order. */
function send(gw: TestGateway, key: string, name: string, done: Answer[]): Promise<Answer> {
  return post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: `Bearer sk-${key}` }).then(async (res) => {
    const text = await res.text()
    const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : null
    const answer = { name, status: res.status, code, retryAfter: res.headers.get('retry-after') }
    done.push(answer)
    return answer
  })
}

function oneConnection(maxPending: number, queueShares: Record<string, number> = {}) {
  return {
    upstreams: [{ name: 'slow', url: slow.url, models: ['velox-sim-1'], pool: { connections: 1, warm: 1, adaptive: false, maxPending, queueTimeoutMs: 30_000 } }],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false as const },
    auth: { keys },
    limits: { queueShares },
  }
}

/**
 * A stream that holds the upstream's one connection (1,000 tokens, 50 s) until `release()`: the
 * client goes away, the gateway cancels it upstream and the connection serves the queue.
 */
function occupy(gw: TestGateway): { release(): void; done: Promise<unknown> } {
  const c = new AbortController()
  const body = chatBody({ stream: true })
  const done = fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-c-normal' }, body, signal: c.signal })
    .then((res) => res.arrayBuffer())
    .catch(() => null)
  return { release: () => c.abort(), done }
}

const queueOf = (gw: TestGateway): AdmissionQueue => gw.app.velox.snapshot.router.members()[0]!.upstream.admission

async function rejected(gw: TestGateway): Promise<Record<string, number>> {
  // With client auth on, /metrics is the admin listener's; the registry is what it serves.
  const text = await gw.app.velox.metrics.registry.metrics()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^velox_upstream_queue_rejected_total\{upstream="([^"]+)",reason="([^"]+)"\} (\d+)/gm)) out[m[2]!] = Number(m[3])
  return out
}

test('a full upstream queue: critical requests take batch requests\u2019 places and are served first', async () => {
  const gw = await startGateway(oneConnection(4, { low: 1, batch: 1 }))
  try {
    const q = queueOf(gw)
    const done: Answer[] = []
    const busy = occupy(gw)
    const all: Promise<unknown>[] = [busy.done]
    await until('the connection busy', () => q.inFlight === 1)
    for (let i = 1; i <= 4; i++) all.push(send(gw, 'a-batch', `batch${i}`, done))
    await until('four batch requests waiting', () => q.waiting === 4)
    all.push(send(gw, 'b-critical', 'critical1', done), send(gw, 'b-critical', 'critical2', done))
    await until('the critical ones waiting', () => q.waitingIn(PRIORITY_CLASS.critical) === 2)
    busy.release()
    await Promise.all(all)
    const shed = done.filter((a) => a.status !== 200)
    assert.deepEqual(shed.map((a) => [a.name, a.status, a.code, a.retryAfter]), [
      ['batch4', 503, 'GW_ERR_UPSTREAM_OVERLOADED', '1'],
      ['batch3', 503, 'GW_ERR_UPSTREAM_OVERLOADED', '1'],
    ], 'the newest batch requests gave their places')
    assert.deepEqual(done.filter((a) => a.status === 200).map((a) => a.name), ['critical1', 'critical2', 'batch1', 'batch2'])
    assert.deepEqual(await rejected(gw), { preempted: 2 })
    assert.deepEqual([q.inFlight, q.waiting], [0, 0])
  } finally {
    await gw.close()
  }
})

test('tenants of one class take turns: a burst of one tenant does not delay another behind all of it', async () => {
  const gw = await startGateway(oneConnection(20))
  try {
    const q = queueOf(gw)
    const done: Answer[] = []
    const busy = occupy(gw)
    const all: Promise<unknown>[] = [busy.done]
    await until('the connection busy', () => q.inFlight === 1)
    for (let i = 1; i <= 6; i++) all.push(send(gw, 'a-normal', `a${i}`, done))
    await until('tenant a\u2019s burst waiting', () => q.waiting === 6)
    all.push(send(gw, 'b-normal', 'b1', done), send(gw, 'b-normal', 'b2', done))
    await until('tenant b waiting too', () => q.waiting === 8)
    all.push(send(gw, 'c-normal', 'c1', done))
    await until('tenant c waiting too', () => q.waiting === 9)
    busy.release()
    await Promise.all(all)
    assert.ok(done.every((a) => a.status === 200), JSON.stringify(done))
    // Arrival order was a1..a6, b1, b2, c1; the queue serves a, b, c in turn.
    assert.deepEqual(done.map((a) => a.name), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a5', 'a6'])
  } finally {
    await gw.close()
  }
})

test('a lower class fills only its share of the queue: batch is refused at once while normal still waits', async () => {
  const gw = await startGateway(oneConnection(4, { batch: 0.25 }))
  try {
    const q = queueOf(gw)
    const done: Answer[] = []
    const busy = occupy(gw)
    const all: Promise<unknown>[] = [busy.done]
    await until('the connection busy', () => q.inFlight === 1)
    all.push(send(gw, 'a-batch', 'batch1', done))
    await until('one batch request waiting', () => q.waiting === 1)
    const refused = await send(gw, 'a-batch', 'batch2', done)
    assert.deepEqual([refused.status, refused.code, refused.retryAfter], [503, 'GW_ERR_UPSTREAM_OVERLOADED', '1'])
    for (let i = 1; i <= 3; i++) all.push(send(gw, 'b-normal', `normal${i}`, done))
    await until('the rest of the queue taken by normal requests', () => q.waiting === 4)
    busy.release()
    await Promise.all(all)
    assert.deepEqual(done.filter((a) => a.status === 200).map((a) => a.name), ['normal1', 'normal2', 'normal3', 'batch1'])
    assert.deepEqual(await rejected(gw), { full: 1 })
  } finally {
    await gw.close()
  }
})

test('a key\u2019s priority class goes with it: a keys-less gateway queues everything as normal, in arrival order', async () => {
  const gw = await startGateway({ ...oneConnection(4), auth: { keys: [] } })
  try {
    const q = queueOf(gw)
    const done: Answer[] = []
    const busy = occupy(gw)
    const all: Promise<unknown>[] = [busy.done]
    await until('the connection busy', () => q.inFlight === 1)
    for (let i = 1; i <= 3; i++) {
      all.push(send(gw, 'none', `n${i}`, done))
      await until(`n${i} waiting`, () => q.waiting === i)
    }
    busy.release()
    await Promise.all(all)
    assert.deepEqual(done.map((a) => [a.name, a.status]), [['n1', 200], ['n2', 200], ['n3', 200]])
    assert.equal(q.waitingIn(PRIORITY_CLASS.normal), 0)
  } finally {
    await gw.close()
  }
})

saturationTests()

/** The same rules in the inference-aware balancer's admission from saturation (one vLLM-mode pod). */
function saturationTests(): void {
  const llmKeys = keys
  // Background requests generate long (400 tokens); the ones under test are short.
  const conversation = (who: string) => JSON.stringify({ model: 'llm', messages: [{ role: 'user', content: `question from ${who}` }], ...(who.startsWith('bg') ? {} : { max_tokens: 3 }) })
  const ask = (gw: TestGateway, key: string, name: string, done: Answer[], signal?: AbortSignal): Promise<Answer | null> =>
    fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer sk-${key}` }, body: conversation(name), signal })
      .then(async (res) => {
        const text = await res.text()
        const code = res.status >= 400 ? (JSON.parse(text) as { error: { code: string } }).error.code : null
        const answer = { name, status: res.status, code, retryAfter: res.headers.get('retry-after') }
        done.push(answer)
        return answer
      })
      .catch(() => null)

  async function saturatedPod(admission: Record<string, unknown>, queueShares: Record<string, number>) {
    // One pod, one request in its batch at a time and generating long; requests then wait on the pod.
    const pod = await startSimulator({ models: ['llm'], tokens: 400, vllm: { maxBatch: 1, stepMs: 20 } })
    const gw = await startGateway({
      upstreams: [{ name: 'pod', url: pod.url, models: ['llm'], pool: { warm: 1 } }],
      cache: { enabled: false },
      auth: { keys: llmKeys },
      limits: { queueShares },
      routing: { balancer: 'inference-aware', health: { intervalMs: 0 }, retry: { maxAttempts: 1 }, inferenceAware: { metrics: { intervalMs: 50 }, admission } },
    })
    const member = gw.app.velox.snapshot.router.members()[0]!
    const scrapedAfter = (t: number) => until('a scrape of the pod', () => member.pod.scrapedAt > t)
    return { pod, gw, member, scrapedAfter }
  }

  test('saturation sheds a lower class at a lower queue depth: batch is shed while normal still goes', async () => {
    const { pod, gw, scrapedAfter } = await saturatedPod({ queueThreshold: 2, mode: 'shed', retryAfterSeconds: 2 }, { batch: 0.5 })
    const background = new AbortController()
    const done: Answer[] = []
    try {
      const first = ask(gw, 'c-normal', 'bg1', done, background.signal)
      await until('one request generating', () => pod.engine!.numRunning === 1)
      const second = ask(gw, 'c-normal', 'bg2', done, background.signal)
      await until('one request waiting on the pod', () => pod.engine!.numWaiting === 1)
      await scrapedAfter(performance.now())
      // The pod's queue is 1: at batch's threshold (2 x 0.5), below normal's (2).
      const batch = await ask(gw, 'a-batch', 'batch', done)
      assert.deepEqual([batch?.status, batch?.code, batch?.retryAfter], [503, 'GW_ERR_UPSTREAMS_SATURATED', '2'])
      const normal = ask(gw, 'b-normal', 'normal', done, background.signal)
      await until('the normal request sent to the pod', () => pod.engine!.numWaiting === 2)
      background.abort()
      await Promise.all([first, second, normal])
    } finally {
      background.abort()
      await gw.close()
      await pod.close()
    }
  })

  test('a full hold: a critical request takes the place of the newest batch request, which is shed', async () => {
    const { pod, gw, member, scrapedAfter } = await saturatedPod({ queueThreshold: 1, mode: 'hold', maxHeld: 2, holdMs: 30_000 }, { low: 1, batch: 1 })
    const background = new AbortController()
    const done: Answer[] = []
    const admission = gw.app.velox.snapshot.router.resolve('llm')!.group.admission!
    try {
      const first = new AbortController()
      const bg = [ask(gw, 'c-normal', 'bg1', done, first.signal)]
      await until('one request generating', () => pod.engine!.numRunning === 1)
      bg.push(ask(gw, 'c-normal', 'bg2', done, background.signal))
      await until('one request waiting on the pod', () => pod.engine!.numWaiting === 1)
      await scrapedAfter(performance.now())
      const held = [ask(gw, 'a-batch', 'batch1', done), ask(gw, 'a-batch', 'batch2', done)]
      await until('two batch requests held', () => admission.heldIn(PRIORITY_CLASS.batch) === 2)
      held.push(ask(gw, 'b-critical', 'critical', done))
      await until('the critical request held', () => admission.heldIn(PRIORITY_CLASS.critical) === 1)
      await until('a batch request shed', () => done.length === 1)
      assert.deepEqual([done[0]!.name, done[0]!.status, done[0]!.code], ['batch2', 503, 'GW_ERR_UPSTREAMS_SATURATED'])
      assert.equal(admission.heldCount, 2)
      // The fleet frees up: both held requests go (in class order: test/gateway/routing/admission.test.ts).
      first.abort()
      background.abort()
      await Promise.all([...held, ...bg])
      assert.deepEqual(done.filter((a) => a.status === 200).map((a) => a.name).sort(), ['batch1', 'critical'])
      assert.equal(member.inFlight, 0)
    } finally {
      background.abort()
      await gw.close()
      await pod.close()
    }
  })
}
