/**
 * An upstream error answer kept back for pass-through (a 5xx with no retry left) is buffered whole,
 * with no size limit, before anything reaches the client: one misbehaving upstream (a proxy's HTML
 * error page, an error stream that never stops) grows the gateway's memory without bound.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { chatBody, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

const TOTAL = 64 * 1024 * 1024
let written = 0
let finishUpstream: (() => void) | null = null
let up: Awaited<ReturnType<typeof startRawUpstream>>
let gw: TestGateway

before(async () => {
  up = await startRawUpstream((req, res) => {
    if (req.method === 'GET') return void res.end('ok')
    req.resume()
    const status = req.url === '/v1/embeddings' ? 200 : 503
    res.writeHead(status, { 'content-type': 'text/html' })
    const chunk = Buffer.alloc(64 * 1024, 'e')
    // Writes as fast as the gateway takes it, then keeps the response open until the test is done.
    const pump = (): void => {
      while (written < TOTAL) {
        written += chunk.length
        if (!res.write(chunk)) return void res.once('drain', pump)
      }
      finishUpstream = () => res.end()
    }
    res.on('close', () => (finishUpstream = null))
    pump()
  })
  gw = await startGateway({
    upstreams: [{ name: 'raw', url: up.url, models: ['*'], pool: { warm: 1 } }],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
  })
})

after(async () => {
  await gw.close()
  await up.close()
})

/** Sends a request on a raw socket that never reads; returns the socket and how many bytes it has received. */
function stalledClient(path: string): { socket: net.Socket; received: () => number } {
  const body = chatBody()
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  let received = 0
  socket.on('data', (d: Buffer) => (received += d.length))
  socket.pause()
  return { socket, received: () => received }
}

/** Waits until the upstream stops making progress (blocked by backpressure, or everything written). */
async function settle(): Promise<void> {
  let last = -1
  for (let i = 0; i < 40 && written !== last; i++) {
    last = written
    await new Promise((r) => setTimeout(r, 150))
  }
}

async function measure(path: string): Promise<{ growth: number; written: number }> {
  written = 0
  global.gc?.()
  const before = process.memoryUsage().arrayBuffers
  const client = stalledClient(path)
  await settle()
  const growth = process.memoryUsage().arrayBuffers - before
  const result = { growth, written }
  finishUpstream?.()
  client.socket.destroy()
  await new Promise((r) => setTimeout(r, 50))
  return result
}

test('control: a large 200 body to a client that does not read is held back by backpressure', async () => {
  const { growth, written: w } = await measure('/v1/embeddings')
  assert.ok(w < TOTAL / 2, `upstream wrote ${w} bytes`)
  assert.ok(growth < 24 * 1024 * 1024, `gateway grew by ${growth} bytes`)
})

test(
  'a large 5xx body with no retry left is not buffered without bound',
  async () => {
    const { growth, written: w } = await measure('/v1/chat/completions')
    assert.ok(growth < 24 * 1024 * 1024, `gateway holds ${Math.round(growth / 1048576)} MiB of an upstream error body (upstream wrote ${Math.round(w / 1048576)} MiB)`)
  },
)
