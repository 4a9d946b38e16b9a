/**
 * Slow uploads are bounded: the whole request within server.requestTimeoutMs (enforced promptly,
 * not at Node's 30 s check), a body below the minimum rate refused early, and a body refused for
 * its size answered with a 413 the client can read (no reset racing the answer).
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { exchange, gatewayCode } from '../../../gateway/chaos/lib/wire.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { startGateway, type TestGateway } from '../../helpers/gateway.ts'

let sim: Simulator
let strict: TestGateway
let rate: TestGateway
let limited: TestGateway

before(async () => {
  sim = await startSimulator({ tokens: 2 })
  const upstreams = [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } }]
  strict = await startGateway({ server: { requestTimeoutMs: 1_000, bodyMinBytesPerSecond: 0, bodyLimit: 1024 * 1024 }, upstreams, routing: { health: { intervalMs: 0 } }, cache: { enabled: false } })
  rate = await startGateway({ server: { requestTimeoutMs: 60_000, bodyMinBytesPerSecond: 1_000, bodyMinRateAfterMs: 300 }, upstreams, routing: { health: { intervalMs: 0 } }, cache: { enabled: false } })
  // The size limit alone: on `strict`, eight 16 MB uploads at once on a busy machine can outlast its 1 s request timeout (a 408).
  limited = await startGateway({ server: { requestTimeoutMs: 60_000, bodyMinBytesPerSecond: 0, bodyLimit: 1024 * 1024 }, upstreams, routing: { health: { intervalMs: 0 } }, cache: { enabled: false } })
})

after(async () => {
  await strict.close()
  await rate.close()
  await limited.close()
  await sim.close()
})

const port = (gw: TestGateway): number => Number(new URL(gw.url).port)
const BODY = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(200) }] })
const head = (length: number): string => `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${length}\r\n\r\n`

test('a body that stalls is answered 408 within the request timeout, not at the next 30 s check', async () => {
  // Node's own check would answer at 30 s: the exchange gives up at 8 s, so an answer at all is the gateway's timer.
  const r = await exchange({ port: port(strict), pieces: [head(BODY.length), BODY.slice(0, 10), 10_000], expect: 1, timeoutMs: 8_000 })
  assert.equal(r.timedOut, false)
  assert.equal(r.responses[0]?.status, 408)
  assert.equal(gatewayCode(r.responses[0]!.body), 'GW_ERR_REQUEST_TIMEOUT')
})

test('a body trickled below the minimum rate is refused once the grace period passed', async () => {
  const pieces: Array<string | number> = [head(BODY.length)]
  for (let i = 0; i < 40; i++) pieces.push(BODY[i]!, 50) // 20 bytes/s
  const r = await exchange({ port: port(rate), pieces, expect: 1, timeoutMs: 8_000 })
  assert.equal(r.responses[0]?.status, 408)
  // Refused for its rate (its own code), not by the 60 s request timeout (past the exchange's 8 s).
  assert.equal(gatewayCode(r.responses[0]!.body), 'GW_ERR_BODY_TOO_SLOW')
  // A body at a normal pace on the same gateway is served.
  const ok = await exchange({ port: port(rate), pieces: [head(BODY.length).replace('\r\n\r\n', '\r\nconnection: close\r\n\r\n'), BODY], expect: 1, timeoutMs: 8_000 })
  assert.equal(ok.responses[0]?.status, 200)
})

test('a body far over the limit gets a readable 413 every time, Content-Length or chunked', async () => {
  const big = Buffer.alloc(16 * 1024 * 1024, 0x20)
  const chunked = [
    'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n',
    ...Array.from({ length: 16 }, () => Buffer.concat([Buffer.from('100000\r\n'), big.subarray(0, 0x100000), Buffer.from('\r\n')])),
    '0\r\n\r\n',
  ]
  const results = await Promise.all([
    ...Array.from({ length: 6 }, () => exchange({ port: port(limited), pieces: [head(big.length), big], expect: 1, timeoutMs: 10_000 })),
    ...Array.from({ length: 2 }, () => exchange({ port: port(limited), pieces: chunked, expect: 1, timeoutMs: 10_000 })),
  ])
  for (const r of results) {
    assert.equal(r.responses[0]?.status, 413, `got ${r.responses.length} answers after ${Math.round(r.ms)} ms`)
    assert.equal(gatewayCode(r.responses[0]!.body), 'GW_ERR_BODY_TOO_LARGE')
  }
})
