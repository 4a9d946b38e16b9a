/**
 * Regional failover must not lock up: a region's /readyz reflects its own upstreams only (not
 * the peer regions it falls back to), and peers are probed on /readyz, where only a 2xx counts
 * as up (a 404 or a 503 does not).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { startSimulator } from '../../../gateway/src/simulator/server.ts'
import { startGateway, startRawUpstream, type TestGateway } from '../../helpers/gateway.ts'
import { eventually } from '../../helpers/eventually.ts'

const fastHealth = { health: { intervalMs: 50, timeoutMs: 500, unhealthyThreshold: 1, healthyThreshold: 1 } }

const until = (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) => eventually(check, { what, timeoutMs })

const readyz = async (gw: TestGateway): Promise<number> => {
  const res = await fetch(`${gw.url}/readyz`)
  await res.arrayBuffer()
  return res.status
}

const memberHealthy = (gw: TestGateway, upstream: string): boolean => gw.app.velox.snapshot.router.members().find((m) => m.upstreamName === upstream)!.healthy

test('a region with no local upstream left is not ready, although its peer is; a peer that is not ready is not used', async () => {
  const simA = await startSimulator({ tokens: 2 })
  const simB = await startSimulator({ tokens: 2 })
  const regionB = await startGateway({ upstreams: [{ name: 'local', url: simB.url, models: ['*'], pool: { warm: 1 } }], routing: fastHealth, cache: { enabled: false } })
  const regionA = await startGateway({
    upstreams: [
      { name: 'local', url: simA.url, models: ['*'], pool: { warm: 1 } },
      { name: 'peer-b', url: regionB.url, models: ['*'], priority: 1, peer: true, pool: { warm: 1 } },
    ],
    routing: fastHealth,
    cache: { enabled: false },
  })
  try {
    assert.equal(await readyz(regionA), 200)
    await until('peer-b is probed healthy', () => memberHealthy(regionA, 'peer-b'))
    await simA.close()
    await until('region A turns not ready', async () => (await readyz(regionA)) === 503)
    assert.equal(memberHealthy(regionA, 'peer-b'), true, 'the peer is still up')
    // Region A still serves through its peer: not ready for new traffic, but not failing what comes.
    const res = await fetch(`${regionA.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) })
    assert.equal(res.status, 200)
    assert.match(res.headers.get('x-velox-upstream') ?? '', /peer-b$/)
    await res.arrayBuffer()
    // Region B loses its own upstream: its /readyz is 503, so A's peer member goes down too.
    await simB.close()
    await until("region B's /readyz turns 503", async () => (await readyz(regionB)) === 503)
    await until('A stops counting B as healthy', () => !memberHealthy(regionA, 'peer-b'))
  } finally {
    await regionA.close()
    await regionB.close()
    await simA.close().catch(() => undefined)
    await simB.close().catch(() => undefined)
  }
})

test('a named health path (and a peer) must answer 2xx: a 404 is not healthy; the default path keeps "below 500 is up"', async () => {
  const notFound = await startRawUpstream((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' })
    res.end('{"error":"no such path"}')
  })
  const gw = await startGateway({
    upstreams: [
      { name: 'hosted', url: notFound.url, models: ['a'], pool: { warm: 0 } },
      { name: 'named', url: notFound.url, models: ['b'], healthPath: '/ready', pool: { warm: 0 } },
      { name: 'peer', url: notFound.url, models: ['c'], peer: true, pool: { warm: 0 } },
    ],
    routing: fastHealth,
    cache: { enabled: false },
  })
  try {
    await until('the named path and the peer are down', () => !memberHealthy(gw, 'named') && !memberHealthy(gw, 'peer'))
    assert.equal(memberHealthy(gw, 'hosted'), true, 'a hosted API without /health is still up')
  } finally {
    await gw.close()
    await notFound.close()
  }
})
