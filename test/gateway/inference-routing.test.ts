/**
 * The inference-aware balancer end to end: a real gateway in front of vLLM-mode simulators,
 * scraping their /metrics; conversations stick to the pod holding their prefix, the route can be
 * explained, and a saturated fleet holds or sheds new requests.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type Simulator, type VllmOptions, startSimulator } from '../../gateway/src/simulator/server.ts'
import { post, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually } from '../helpers/eventually.ts'

const SYSTEM = 'You are the support assistant of a bicycle shop; be concise and friendly. '.repeat(30)

function conversation(session: string, turns: number, extra: Record<string, unknown> = {}): string {
  const messages: { role: string; content: string }[] = [{ role: 'system', content: `${session} `.repeat(100) + SYSTEM }]
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t} from ${session}: `.padEnd(400, '.') })
    if (t < turns - 1) messages.push({ role: 'assistant', content: `Answer ${t}`.padEnd(200, '.') })
  }
  return JSON.stringify({ model: 'llm', messages, ...extra })
}

const until = (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000) => eventually(check, { what, timeoutMs })

/** Waits until the gateway has scraped every pod after `t` (performance.now() of this process, the gateway's too). */
async function scrapedAfter(gw: TestGateway, t: number): Promise<void> {
  await until(() => gw.app.velox.snapshot.router.members().every((m) => m.pod.scrapedAt > t), 'a scrape of every pod')
}

async function fleet(n: number, vllm: VllmOptions, tokens = 4): Promise<Simulator[]> {
  return Promise.all(Array.from({ length: n }, () => startSimulator({ models: ['llm'], tokens, vllm })))
}

const upstreams = (sims: Simulator[]) => sims.map((s, i) => ({ name: `pod${i}`, url: s.url, models: ['llm'], pool: { warm: 1 } }))

describe('inference-aware routing', () => {
  let sims: Simulator[]
  let gw: TestGateway
  before(async () => {
    sims = await fleet(3, { stepMs: 1, prefillMsPerToken: 0.01 })
    gw = await startGateway({
      upstreams: upstreams(sims),
      cache: { enabled: false },
      routing: { balancer: 'inference-aware', health: { intervalMs: 0 }, inferenceAware: { explain: true, metrics: { intervalMs: 50 } } },
    })
  })
  after(async () => {
    await gw.close()
    await Promise.all(sims.map((s) => s.close()))
  })

  test('every turn of a conversation reaches the pod that holds its prefix, and the pods see cache hits', async () => {
    const homes = new Map<string, string>()
    for (let turn = 1; turn <= 4; turn++) {
      for (const session of ['alice', 'bob', 'carol', 'dave']) {
        const res = await post(`${gw.url}/v1/chat/completions`, conversation(session, turn))
        assert.equal(res.status, 200, await res.clone().text())
        await res.arrayBuffer()
        const pod = res.headers.get('x-velox-upstream')!
        if (turn === 1) homes.set(session, pod)
        else assert.equal(pod, homes.get(session), `${session} turn ${turn}`)
      }
    }
    const hits = sims.reduce((n, s) => n + s.engine!.counters.prefixHits, 0)
    const queries = sims.reduce((n, s) => n + s.engine!.counters.prefixQueries, 0)
    assert.ok(hits / queries > 0.5, `prefix-cache hit rate ${(hits / queries).toFixed(2)}`)
    // Every charge was released at its first token.
    for (const m of gw.app.velox.snapshot.router.members()) assert.equal(m.prefillPending, 0, m.name)
  })

  test('x-velox-route explains the pick only when asked', async () => {
    const asked = await post(`${gw.url}/v1/chat/completions`, conversation('erin', 1), { 'x-velox-debug': 'route' })
    await asked.arrayBuffer()
    assert.match(asked.headers.get('x-velox-route') ?? '', /^member=pod\d; score=[\d.]+; prefill=[\d.]+x4; prefix=[\d.]+x1; queue=[\d.]+x1; kvCache=[\d.]+x0\.5; load=[\d.]+x1; latency=[\d.]+x0\.5; prefix_blocks=\d+\/\d+; pending_blocks=\d+;/)
    const quiet = await post(`${gw.url}/v1/chat/completions`, conversation('erin', 1))
    await quiet.arrayBuffer()
    assert.equal(quiet.headers.get('x-velox-route'), null)
  })

  test('the gateway scrapes every pod\u2019s vLLM gauges', async () => {
    await scrapedAfter(gw, performance.now())
    for (const m of gw.app.velox.snapshot.router.members()) assert.equal(m.pod.failures, 0, m.name)
  })
})

describe('admission from saturation', () => {
  for (const mode of ['shed', 'hold'] as const) {
    test(`${mode}: a new request while every pod's queue is at the threshold`, async () => {
      // One request runs per pod and generates for a long time; one more waits on each.
      const sims = await fleet(2, { maxBatch: 1, stepMs: 20 }, 400)
      const gw = await startGateway({
        upstreams: upstreams(sims),
        cache: { enabled: false },
        routing: {
          balancer: 'inference-aware',
          health: { intervalMs: 0 },
          inferenceAware: { metrics: { intervalMs: 50 }, admission: { queueThreshold: 1, mode, holdMs: 30_000, retryAfterSeconds: 3 } },
        },
      })
      const aborts: AbortController[] = []
      try {
        const inEngines = () => sims.reduce((n, s) => n + s.engine!.numRunning + s.engine!.numWaiting, 0)
        const background: Promise<unknown>[] = []
        for (let i = 0; i < 4; i++) {
          const c = new AbortController()
          aborts.push(c)
          background.push(fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: conversation(`bg${i}`, 1, { stream: true }), signal: c.signal }).catch(() => null))
          await until(() => inEngines() === i + 1, `background request ${i} on a pod`)
          await scrapedAfter(gw, performance.now())
        }
        await until(() => sims.every((s) => s.engine!.numWaiting === 1), 'one waiting on each pod')
        await scrapedAfter(gw, performance.now())
        const started = performance.now()
        const pending = fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: conversation('late', 1, { max_tokens: 2 }) })
        if (mode === 'shed') {
          const res = await pending
          assert.equal(res.status, 503)
          assert.equal(res.headers.get('retry-after'), '3')
          const body = (await res.json()) as { error: { code: string; type: string } }
          assert.equal(body.error.code, 'GW_ERR_UPSTREAMS_SATURATED')
          assert.equal(body.error.type, 'server_error')
          assert.equal(sims[0]!.engine!.numWaiting + sims[1]!.engine!.numWaiting, 2, 'nothing was added to a queue')
          for (const c of aborts) c.abort() // shed: the fleet need not finish generating
        } else {
          await scrapedAfter(gw, performance.now())
          await scrapedAfter(gw, performance.now())
          assert.equal(sims[0]!.engine!.numWaiting + sims[1]!.engine!.numWaiting, 2, 'held in the gateway, not queued on a pod')
          for (const c of aborts) c.abort() // the fleet frees up
          const res = await pending
          assert.equal(res.status, 200)
          await res.arrayBuffer()
          assert.ok(performance.now() - started >= 100, 'it was held')
        }
        await Promise.all(background)
      } finally {
        for (const c of aborts) c.abort()
        await gw.close()
        await Promise.all(sims.map((s) => s.close()))
      }
    })
  }
})
