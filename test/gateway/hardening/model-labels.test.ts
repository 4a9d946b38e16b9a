/**
 * Model names are client-chosen when a `"*"` upstream serves any model: they must not grow the
 * metrics (label values, series, per-name cells) or any per-model map without bound.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { post, startGateway, type TestGateway } from '../../helpers/gateway.ts'

let sim: Simulator
let gw: TestGateway

before(async () => {
  sim = await startSimulator({ tokens: 2, models: ['listed-model'] })
  gw = await startGateway({
    upstreams: [
      { name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } },
      { name: 'named', url: sim.url, models: ['configured-model-with-a-rather-long-name-that-exceeds-sixty-four-characters-easily'], pool: { warm: 1 } },
    ],
    routing: { health: { intervalMs: 0 } },
    cache: { enabled: false },
  })
})

after(async () => {
  await gw.close()
  await sim.close()
})

async function send(model: string): Promise<void> {
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }))
  assert.equal(res.status, 200)
  await res.arrayBuffer()
}

test('client-chosen model names never become labels in /metrics or keys of the per-name cells; served names keep their label', async () => {
  const before = (await (await fetch(`${gw.url}/metrics`)).text()).length
  // 300 short names (past the 256-label cap) and 20 long ones, ten at a time.
  const names = Array.from({ length: 320 }, (_, i) => `${String(i).padStart(4, '0')}-${'x'.repeat(i % 16 === 15 ? 240 : 20)}`)
  for (let i = 0; i < names.length; i += 10) await Promise.all(names.slice(i, i + 10).map(send))
  await send('configured-model-with-a-rather-long-name-that-exceeds-sixty-four-characters-easily')
  await send('listed-model') // listed by the "*" upstream's own /v1/models at warm-up
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const labels = new Set([...text.matchAll(/^velox_requests_total\{[^}]*model="([^"]*)"/gm)].map((m) => m[1]!))
  // Served models keep their names (configured, and listed by the "*" upstream); every name only a client chose is `other`.
  assert.deepEqual([...labels].sort(), ['configured-model-with-a-rather-long-name-that-exceeds-sixty-four-characters-easily', 'listed-model', 'other'])
  const tokenLabels = new Set([...text.matchAll(/^velox_tokens_total\{[^}]*model="([^"]*)"/gm)].map((m) => m[1]!))
  for (const l of tokenLabels) assert.ok(labels.has(l), `velox_tokens_total has model="${l}"`)
  assert.ok(text.length - before < 20_000, `the scrape grew by ${text.length - before} bytes`)
  // The cells behind the counter are keyed by label, not by the raw name.
  const cells = (gw.app.velox.metrics as unknown as { requestCells: Map<string, Map<string, unknown>> }).requestCells
  for (const byModel of cells.values()) assert.ok(byModel.size <= 3, `${byModel.size} per-model cell maps`)
})
