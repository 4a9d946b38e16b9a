/**
 * `pool.maxConnectionAgeMs`: a connection older than the limit is retired and the next request
 * opens a new one; with the limit off, one keep-alive connection serves every request. The age
 * is kept by the gateway (upstream/upstream.ts) instead of undici's per-dispatch scan, so this
 * checks the behaviour end to end against a real HTTP server counting its connections.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chatBody, post, startGateway, startRawUpstream } from '../helpers/gateway.ts'

async function upstreamCountingConnections(): Promise<{ url: string; connections: () => number; openedAt: number[]; close(): Promise<void> }> {
  const openedAt: number[] = []
  const upstream = await startRawUpstream((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] }))
    })
  })
  upstream.server.on('connection', () => openedAt.push(performance.now()))
  return { url: upstream.url, connections: () => openedAt.length, openedAt, close: () => upstream.close() }
}

async function send(url: string): Promise<void> {
  const res = await post(`${url}/v1/chat/completions`, chatBody())
  assert.equal(res.status, 200)
  await res.text()
}

test('a connection past maxConnectionAgeMs is replaced by a new one', async () => {
  const upstream = await upstreamCountingConnections()
  const gw = await startGateway({ upstreams: [{ name: 'raw', url: upstream.url, models: ['*'], pool: { connections: 1, warm: 1, maxConnectionAgeMs: 300 } }] })
  try {
    await send(gw.url)
    const first = upstream.connections()
    assert.ok(first >= 1)
    const started = performance.now()
    // Requests keep coming; once the connection is older than 300 ms the pool opens another.
    while (upstream.connections() === first && performance.now() - started < 10_000) await send(gw.url)
    assert.equal(upstream.connections(), first + 1, 'a new connection replaced the aged one')
    const [firstOpened, replacedAt] = [upstream.openedAt[first - 1]!, upstream.openedAt[first]!]
    assert.ok(replacedAt - firstOpened >= 300, `replaced ${(replacedAt - firstOpened).toFixed(0)} ms after it opened: not before it was old enough`)
    assert.equal(gw.app.velox.snapshot.router.members()[0]!.upstream.agedConnections, 1, 'the new connection is watched')
  } finally {
    await gw.close()
    await upstream.close()
  }
})

test('with maxConnectionAgeMs 0 one keep-alive connection serves every request', async () => {
  const upstream = await upstreamCountingConnections()
  const gw = await startGateway({ upstreams: [{ name: 'raw', url: upstream.url, models: ['*'], pool: { connections: 1, warm: 1, maxConnectionAgeMs: 0 } }] })
  try {
    await send(gw.url)
    const first = upstream.connections()
    const started = performance.now()
    // As long as the test above needed, and longer than its age limit.
    while (performance.now() - started < 600) await send(gw.url)
    assert.equal(upstream.connections(), first)
    assert.equal(gw.app.velox.snapshot.router.members()[0]!.upstream.agedConnections, 0)
  } finally {
    await gw.close()
    await upstream.close()
  }
})
