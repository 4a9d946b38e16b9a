import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, startGateway } from '../helpers/gateway.ts'

async function connected(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/velox_pool_connections\{upstream="sim",state="connected"\} (\d+)/.exec(text)?.[1] ?? NaN)
}

async function burst(url: string, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => (await post(`${url}/v1/chat/completions`, chatBody())).arrayBuffer()))
}

for (const adaptive of [true, false]) {
  test(`adaptive pool sizing ${adaptive ? 'keeps connections open ahead of the next burst' : 'off: the pool holds only what demand opened'}`, async () => {
    const sim = await startSimulator({ ttftMs: 150 })
    const gw = await startGateway({
      upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { connections: 64, warm: 1, adaptive, headroom: 0.5 } }],
      cache: { enabled: false },
      routing: { health: { intervalMs: 0 } },
    })
    try {
      // warm: 1, plus at most one for the warm-up's model listing (undici holds a just-used socket back a tick).
      assert.ok((await connected(gw.url)) <= 2)
      await burst(gw.url, 12)
      await new Promise((r) => setTimeout(r, 1_300)) // one sizing tick
      const open = await connected(gw.url)
      if (adaptive) assert.ok(open >= 17, `after a burst of 12 the pool holds ${open} connections, not ~18`)
      else assert.ok(open <= 13, `without adaptive sizing the pool grew to ${open}`)
    } finally {
      await gw.close()
      await sim.close()
    }
  })
}
