/**
 * Malformed or hostile client traffic: "bad input gets a clear OpenAI-shaped error with a stable
 * code, never a crash or a hang".
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, startGateway, type TestGateway } from '../helpers/gateway.ts'

let sim: Simulator
let gw: TestGateway

before(async () => {
  sim = await startSimulator({ tokens: 3 })
  gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } }], routing: { health: { intervalMs: 0 } }, cache: { enabled: false } })
})

after(async () => {
  await gw.close()
  await sim.close()
})

/** Writes raw bytes on a new connection; resolves with everything read until the server closes it. */
async function exchange(request: string): Promise<string> {
  const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
  let out = ''
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')))
  socket.on('error', () => undefined)
  socket.write(request)
  await Promise.race([once(socket, 'close'), new Promise((r) => setTimeout(r, 2_000))])
  socket.destroy()
  return out
}

function errorCode(response: string): unknown {
  const body = response.slice(response.indexOf('\r\n\r\n') + 4)
  try {
    return (JSON.parse(body) as { error?: { code?: unknown } }).error?.code
  } catch {
    return `not JSON: ${body.slice(0, 120)}`
  }
}

test('control: a JSON null body gets GW_ERR_INVALID_BODY', async () => {
  const response = await exchange('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnull')
  assert.match(response, /^HTTP\/1\.1 400 /)
  assert.equal(errorCode(response), 'GW_ERR_INVALID_BODY')
})

test(
  'oversized request headers and unparseable requests get an OpenAI-shaped error',
  async () => {
    const big = await exchange(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(20_000)}\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`)
    assert.match(big, /^HTTP\/1\.1 431 /)
    assert.equal(typeof errorCode(big), 'string')
    assert.match(String(errorCode(big)), /^GW_ERR_/, big)
  },
)

test(
  'a client that sends its headers and then stalls the body is eventually timed out',
  async () => {
    const body = chatBody()
    const socket = net.connect(Number(new URL(gw.url).port), '127.0.0.1')
    socket.on('error', () => undefined)
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`)
    try {
      // Nothing bounds how long this connection may hold its slot: no request timeout is armed at all.
      assert.ok(gw.app.server.requestTimeout > 0, `server.requestTimeout is ${gw.app.server.requestTimeout}: a stalled body holds the connection forever`)
    } finally {
      socket.destroy()
    }
  },
)
