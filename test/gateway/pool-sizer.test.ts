import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator } from '../../gateway/src/simulator/server.ts'
import { eventually } from '../helpers/eventually.ts'
import { chatBody, post, startGateway } from '../helpers/gateway.ts'

async function connected(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/velox_pool_connections\{upstream="sim",state="connected"\} (\d+)/.exec(text)?.[1] ?? NaN)
}

async function burst(url: string, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, async () => (await post(`${url}/v1/chat/completions`, chatBody())).arrayBuffer()))
}

for (const adaptive of [true, false]) {
  test(`adaptive pool sizing ${adaptive ? 'keeps connections open ahead of the next burst' : 'off: the pool holds only what demand opened'}`, async (t) => {
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
      // One sizing tick now, instead of waiting for the 1 s timer: it decides synchronously
      // whether to open connections ahead of demand (Upstream.open); they connect in their own time.
      const member = gw.app.velox.snapshot.router.members()[0]!
      const upstream = member.upstream
      const peak = upstream.peakConcurrency
      assert.ok(peak >= 4, `the burst reached only ${peak} in flight`)
      const open = t.mock.method(upstream, 'open')
      gw.app.velox.snapshot.sizer.tick()
      if (adaptive) {
        // peak x (1 + headroom): ~18 after a burst of 12 (fewer when a loaded machine overlapped
        // fewer of them). The 1 s timer may have ticked first: either way the pool gets there.
        const target = gw.app.velox.snapshot.sizer.target(member)
        assert.ok(target >= Math.ceil(peak * 1.5) - 1 && target > peak + 1, `target ${target} for a peak of ${peak}`)
        await eventually(async () => (await connected(gw.url)) >= target - 1, { what: `the pool to open ~${target} connections after a burst that peaked at ${peak}` })
      } else {
        assert.equal(open.mock.callCount(), 0, 'the sizer opened connections with adaptive sizing off')
        const n = await connected(gw.url)
        assert.ok(n <= 13, `without adaptive sizing the pool grew to ${n}`)
      }
    } finally {
      await gw.close()
      await sim.close()
    }
  })
}
