/**
 * velox_requests_total{status} counts what the client saw: a stream that broke after its 200
 * went out is a 200 there, and the failure is counted on its own in velox_responses_broken_total,
 * so an operator's error rate still sees every stream that breaks.
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

async function broken(): Promise<Map<string, number>> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^velox_responses_broken_total\{[^}]*code="([^"]+)"[^}]*\} (\d+)/gm)) out.set(m[1]!, Number(m[2]))
  return out
}

test('a stream that broke mid-way counts as the 200 the client got, and as broken; a body that never came as its error', async () => {
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
  assert.deepEqual([...(await samples('broken'))].sort(), [['200', 2], ['504', 1]])
  assert.deepEqual([...(await broken())].sort(), [['GW_ERR_UPSTREAM_IDLE_TIMEOUT', 1], ['GW_ERR_UPSTREAM_STREAM_BROKEN', 1]])
  // The clean stream of the control test broke nothing.
  assert.deepEqual([...(await samples('clean'))], [['200', 1]])
})
