/**
 * Requests Node itself answers oddly (empty bodies, a closed socket) or accepts although HTTP
 * forbids them: each gets an OpenAI-shaped answer with the right status.
 */
import { after, before, test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { exchange, gatewayCode, isOpenAIError } from '../../../gateway/chaos/lib/wire.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { startGateway, type TestGateway, chatBody } from '../../helpers/gateway.ts'
import { once } from 'node:events'
import net from 'node:net'

let sim: Simulator
let gw: TestGateway
let port: number

before(async () => {
  sim = await startSimulator({ tokens: 2 })
  gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } }], routing: { health: { intervalMs: 0 } }, cache: { enabled: false } })
  port = Number(new URL(gw.url).port)
})

after(async () => {
  await gw.close()
  await sim.close()
})

const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })

async function ask(lines: string[], body = BODY): Promise<{ status: number; code: string | null; shaped: boolean }> {
  const request = `${lines.join('\r\n')}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  const r = await exchange({ port, pieces: [request], expect: 1, timeoutMs: 5_000 })
  const res = r.responses[0]
  assert.ok(res !== undefined, `no answer to ${lines[0]}`)
  return { status: res.status, code: gatewayCode(res.body), shaped: res.status < 400 || isOpenAIError(res.body) }
}

test('control: one Host header is served', async () => {
  assert.equal((await ask(['POST /v1/chat/completions HTTP/1.1', 'Host: x'])).status, 200)
  assert.equal((await ask(['POST /v1/chat/completions HTTP/1.0'])).status, 200, 'HTTP/1.0 may omit Host')
})

test('no Host, or two, is a 400 in the OpenAI shape', async () => {
  for (const lines of [['POST /v1/chat/completions HTTP/1.1'], ['POST /v1/chat/completions HTTP/1.1', 'Host: a', 'host: b'], ['GET /v1/models HTTP/1.1', 'HOST: a', 'Host: a']]) {
    const r = await ask(lines)
    assert.deepEqual(r, { status: 400, code: 'GW_ERR_MALFORMED_REQUEST', shaped: true }, lines.join(' | '))
  }
})

test('an Expect other than 100-continue is a 417 in the OpenAI shape; 100-continue is served', async () => {
  assert.deepEqual(await ask(['POST /v1/chat/completions HTTP/1.1', 'Host: x', 'Expect: 200-ok']), { status: 417, code: 'GW_ERR_EXPECTATION_FAILED', shaped: true })
  assert.equal((await ask(['POST /v1/chat/completions HTTP/1.1', 'Host: x', 'Expect: 100-continue'])).status, 200)
})

test('CONNECT is answered 405, not dropped', async () => {
  for (const target of ['127.0.0.1:443', '/v1/models']) {
    const r = await exchange({ port, pieces: [`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`], expect: 1, timeoutMs: 5_000 })
    const res = r.responses[0]
    assert.ok(res !== undefined, `no answer to CONNECT ${target}`)
    assert.equal(res.status, 405)
    assert.equal(gatewayCode(res.body), 'GW_ERR_METHOD_NOT_ALLOWED')
  }
})

test('a path with broken percent-encoding is a 400 in the OpenAI shape', async () => {
  for (const path of ['/v1/%', '/v1/models/%zz', '/%E0%A4%A']) {
    assert.deepEqual(await ask([`GET ${path} HTTP/1.1`, 'Host: x']), { status: 400, code: 'GW_ERR_MALFORMED_REQUEST', shaped: true }, path)
  }
})

describe('malformed or hostile client traffic', () => {
  /**
   * Malformed or hostile client traffic: "bad input gets a clear OpenAI-shaped error with a stable
   * code, never a crash or a hang".
   */
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
    let timer: NodeJS.Timeout | undefined
    await Promise.race([once(socket, 'close'), new Promise((r) => (timer = setTimeout(r, 2_000)))])
    clearTimeout(timer) // else it holds the test process open for up to 2 s after the last test
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
})
