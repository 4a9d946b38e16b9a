/**
 * A call lets go of its request body once it commits to an answer (`CallRequest.release()`): a
 * long stream does not hold its prompt, as bytes or parsed, until it ends. Before that, every
 * attempt (a failover, a hedge) still sends the client's whole body.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import type http from 'node:http'
import { chatBody, post, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'
import { eventually } from '../helpers/eventually.ts'
import type { ProxyCall } from '../../gateway/src/proxy/call.ts'

type Raw = Awaited<ReturnType<typeof startRawUpstream>>

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

const EVENT = (text: string): string => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`

describe('the request body after the call commits', () => {
  let failing: Raw
  let streaming: Raw
  let gw: TestGateway
  const received: string[] = []
  let refused = 0
  /** Ends the stream the upstream holds open. */
  let finish: (() => void) | null = null
  before(async () => {
    failing = await startRawUpstream((req, res) => {
      if (req.method === 'POST') refused++
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":{"message":"busy"}}')
    })
    streaming = await startRawUpstream((req, res) => {
      if (req.method !== 'POST') return void res.writeHead(404).end()
      void readBody(req).then((body) => {
        received.push(body)
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write(EVENT('first'))
        finish = () => res.end(`${EVENT('last')}data: [DONE]\n\n`)
      })
    })
    gw = await startGateway({
      cache: { enabled: false },
      routing: { balancer: 'weighted-round-robin', health: { intervalMs: 0 } },
      upstreams: [
        { name: 'busy', url: failing.url, models: ['*'], pool: { warm: 0 } },
        { name: 'ok', url: streaming.url, models: ['*'], pool: { warm: 0 } },
      ],
    })
  })
  after(async () => {
    await gw.close()
    await Promise.all([failing.close(), streaming.close()])
  })

  const inFlight = (): ProxyCall[] => [...gw.app.velox.inFlight]

  test('a failover sends the whole body; once the stream committed, the call holds none of it', async () => {
    const prompt = 'a long prompt '.repeat(4_000)
    const sent = chatBody({ stream: true, messages: [{ role: 'user', content: prompt }] })
    // Round robin over the two: one of the two requests meets the refusing member first and fails over.
    for (let i = 0; i < 2; i++) {
      finish = null
      const res = await post(`${gw.url}/v1/chat/completions`, sent)
      assert.equal(res.status, 200)
      const reader = res.body!.getReader()
      const first = Buffer.from((await reader.read()).value!).toString('utf8')
      assert.match(first, /first/)
      const [call] = await eventually(() => (inFlight().length === 1 ? inFlight() : null), { what: 'the stream in flight' })
      assert.equal(call!.committed, true)
      assert.equal(call!.request.body.length, 0, 'the committed call holds no request bytes')
      assert.equal(call!.request.native, null)
      assert.equal(call!.request.model, 'velox-sim-1', 'what the call reads after committing stays')
      assert.equal(call!.request.stream, true)
      finish!()
      let rest = ''
      for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString('utf8')
      assert.match(rest, /last[\s\S]*data: \[DONE\]/)
      await eventually(() => inFlight().length === 0, { what: 'the call finished' })
    }
    assert.ok(refused >= 1, 'a request failed over')
    assert.equal(received.length, 2)
    // The upstream after the failover got the client's bytes unchanged.
    for (const body of received) assert.equal(body, sent)
  })
})
