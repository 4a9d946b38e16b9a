/**
 * Requests beyond an upstream's connections wait in a bounded queue with a deadline (Envoy's
 * max_pending_requests): past the queue or the deadline a request fails over to a member with
 * room, or gets 503 GW_ERR_UPSTREAM_OVERLOADED with Retry-After, counted in a metric. Never an
 * unbounded wait.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { post, startGateway, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'

let slow: Simulator
let longStreams: Simulator
let fast: Simulator

before(async () => {
  slow = await startSimulator({ tokens: 20, interTokenMs: 40 }) // streams of about 0.8 s
  longStreams = await startSimulator({ tokens: 150, interTokenMs: 30 }) // about 4.5 s: longer than the queue deadline
  fast = await startSimulator({ tokens: 2 })
})

after(async () => {
  await slow.close()
  await longStreams.close()
  await fast.close()
})

const until = (what: string, check: () => boolean, timeoutMs = 10_000) => eventually(check, { what, timeoutMs, intervalMs: 5 })

const stream = JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] })

interface Answer {
  status: number
  code: string | null
  retryAfter: string | null
  upstream: string | null
  ms: number
}

async function burst(gw: TestGateway, n: number): Promise<Answer[]> {
  const started = performance.now()
  return Promise.all(
    Array.from({ length: n }, async () => {
      const res = await post(`${gw.url}/v1/chat/completions`, stream)
      const text = await res.text()
      const code = res.status >= 400 ? ((JSON.parse(text) as { error: { code: string } }).error.code) : null
      return { status: res.status, code, retryAfter: res.headers.get('retry-after'), upstream: res.headers.get('x-velox-upstream'), ms: performance.now() - started }
    }),
  )
}

async function rejected(gw: TestGateway): Promise<Record<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/^velox_upstream_queue_rejected_total\{upstream="([^"]+)",reason="([^"]+)"\} (\d+)/gm)) out[`${m[1]} ${m[2]}`] = Number(m[3])
  return out
}

const pool = (maxPending: number, queueTimeoutMs: number) => ({ connections: 2, warm: 1, adaptive: false, maxPending, queueTimeoutMs })

test('past the connections a bounded queue waits; past the queue or its deadline: 503 with Retry-After, counted', async () => {
  const gw = await startGateway({
    upstreams: [{ name: 'slow', url: longStreams.url, models: ['*'], pool: pool(2, 1_500) }],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
  })
  try {
    const admission = gw.app.velox.snapshot.router.members()[0]!.upstream.admission
    const first = burst(gw, 4)
    await until('two in the pool, two waiting', () => admission.inFlight === 2 && admission.waiting === 2)
    const overflow = await burst(gw, 2) // refused at once: the queue is full
    for (const a of overflow) assert.deepEqual([a.status, a.code, a.retryAfter], [503, 'GW_ERR_UPSTREAM_OVERLOADED', '1'])
    const answers = await first
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 503, 503], JSON.stringify(answers))
    for (const a of answers.filter((x) => x.status === 503)) {
      assert.deepEqual([a.code, a.retryAfter], ['GW_ERR_UPSTREAM_OVERLOADED', '1'])
      assert.ok(a.ms >= 1_500, `a queued request was refused after ${Math.round(a.ms)} ms, before its queue deadline`)
    }
    assert.deepEqual(await rejected(gw), { 'slow full': 2, 'slow timeout': 2 })
    assert.deepEqual([admission.inFlight, admission.waiting], [0, 0])
  } finally {
    await gw.close()
  }
})

test('queued requests that get a connection within the deadline are served in order', async () => {
  const gw = await startGateway({
    upstreams: [{ name: 'slow', url: slow.url, models: ['*'], pool: pool(2, 5_000) }],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
  })
  try {
    const answers = await burst(gw, 4)
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200])
    assert.deepEqual(await rejected(gw), {})
  } finally {
    await gw.close()
  }
})

test('overflow fails over to another member with room instead of failing', async () => {
  const gw = await startGateway({
    upstreams: [
      { name: 'slow', url: slow.url, models: ['*'], pool: pool(1, 250) },
      { name: 'fast', url: fast.url, models: ['*'], priority: 1, pool: { warm: 1 } },
    ],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
  })
  try {
    const answers = await burst(gw, 6)
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200, 200, 200, 200])
    assert.equal(answers.filter((a) => a.upstream === 'slow').length, 2)
    assert.equal(answers.filter((a) => a.upstream === 'fast').length, 4)
    const counted = await rejected(gw)
    assert.equal((counted['slow full'] ?? 0) + (counted['slow timeout'] ?? 0), 4, JSON.stringify(counted))
  } finally {
    await gw.close()
  }
})
