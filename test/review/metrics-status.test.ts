/**
 * velox_requests_total{status} must not report a response that failed after it started as a
 * success: an operator's error rate would stay at 0% while every stream breaks.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { post, readEvents, startGateway, type TestGateway } from '../helpers/gateway.ts'

let sim: Simulator
let gw: TestGateway

before(async () => {
  sim = await startSimulator({ tokens: 20, interTokenMs: 5 })
  gw = await startGateway({
    log: { level: 'silent' },
    upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 }, timeouts: { idleMs: 200 } }],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
  })
})

after(async () => {
  await gw.close()
  await sim.close()
})

const body = (model: string, stream: boolean) => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] })

async function samples(model: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^velox_requests_total\{([^}]*)\} (\d+)/.exec(line)
    if (m === null || !m[1]!.includes(`model="${model}"`)) continue
    const status = /status="(\d+)"/.exec(m[1]!)![1]!
    out.set(status, (out.get(status) ?? 0) + Number(m[2]))
  }
  return out
}

test('control: a clean stream is counted as 200', async () => {
  const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('clean', true)))
  assert.equal(events.at(-1), 'data: [DONE]')
  assert.deepEqual([...(await samples('clean'))], [['200', 1]])
})

test(
  'streams that broke mid-way and bodies that were cut are not counted as status 200',
  async () => {
    sim.setFaults({ resetAfterChunks: 2 })
    try {
      const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('broken', true)))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_STREAM_BROKEN/)
    } finally {
      sim.clearFaults()
    }
    sim.setFaults({ hangAfterChunks: 2 })
    try {
      const { events } = await readEvents(await post(`${gw.url}/v1/chat/completions`, body('broken', true)))
      assert.match(events.at(-1)!, /GW_ERR_UPSTREAM_IDLE_TIMEOUT/)
    } finally {
      sim.clearFaults()
    }
    // A non-streamed answer whose body never comes: nothing reached the client, so it gets a 504.
    sim.setFaults({ stallAfterHeadersMs: 5_000 })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, body('broken', false))
      assert.equal(res.status, 504)
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UPSTREAM_IDLE_TIMEOUT')
    } finally {
      sim.clearFaults()
    }
    const counted = await samples('broken')
    assert.equal([...counted.values()].reduce((a, b) => a + b, 0), 3, JSON.stringify([...counted]))
    assert.equal(counted.get('200'), undefined, `failed requests counted as success: ${JSON.stringify([...counted])}`)
  },
)
