/** The gateway as operators run it: a real process, real signals, a stock OpenAI client. */
import { after, test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import OpenAI from 'openai'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { MAIN, configFile, killGatewayProcesses, startGatewayProcess, waitReady } from '../helpers/process.ts'
import net from 'node:net'
import { eventually } from '../helpers/eventually.ts'

after(killGatewayProcesses)

test('with no upstream it serves from the simulator, says so, and a stock OpenAI client streams through it', async () => {
  const { child, url, logs } = await startGatewayProcess([])
  await waitReady(url)
  assert.match(logs(), /NO UPSTREAM CONFIGURED/)
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-anything', maxRetries: 0 })
  const stream = await client.chat.completions.create({
    model: 'any-model',
    messages: [{ role: 'user', content: 'Say hello' }],
    stream: true,
    stream_options: { include_usage: true },
  })
  let text = ''
  let usage: OpenAI.CompletionUsage | undefined
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? ''
    usage = chunk.usage ?? usage
  }
  assert.ok(text.length > 0)
  assert.ok(usage && usage.completion_tokens > 0)
  const completion = await client.chat.completions.create({ model: 'any-model', messages: [{ role: 'user', content: 'Say hello' }] })
  assert.equal(completion.choices[0]?.message.content, text)
  const models = await client.models.list()
  assert.ok(models.data.some((m) => m.id === 'velox-sim-1'), 'the simulator’s model is not listed')
  const embedding = await client.embeddings.create({ model: 'any-model', input: 'hello' })
  assert.ok(embedding.data[0]!.embedding.length > 0)
  await assert.rejects(client.chat.completions.create({ model: '', messages: [] }), (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.code === 'GW_ERR_MODEL_REQUIRED')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
})

test('SIGTERM lets an in-flight stream finish, refuses new connections, then exits 0', async () => {
  const sim = await startSimulator({ tokens: 10, interTokenMs: 150 })
  const config = configFile(`log: { level: info }\nserver: { shutdownTimeoutMs: 10000 }\nupstreams:\n  - name: sim\n    url: ${sim.url}\n    models: ["*"]\n`)
  try {
    const { child, url } = await startGatewayProcess(['--config', config])
    await waitReady(url)
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
    })
    // The headers are in: the stream is in flight (10 tokens, 150 ms apart).
    let ended = false
    const body = res.text().finally(() => (ended = true))
    child.kill('SIGTERM')
    await eventually(() => fetch(`${url}/healthz`, { headers: { connection: 'close' } }).then(() => false, () => true), { what: 'new connections refused' })
    assert.equal(ended, false, 'new connections were refused only after the stream had ended')
    const text = await body
    assert.match(text, /data: \[DONE\]\n\n$/, 'the in-flight stream was cut by shutdown')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
  } finally {
    await sim.close()
  }
})

test('an invalid config file stops the gateway with the bad path named', async () => {
  const config = configFile('upstreams:\n  - name: a\n    url: not-a-url\n    models: [m]\n')
  const child = spawn(process.execPath, [MAIN, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err += c))
  const [code] = await once(child, 'exit')
  assert.equal(code, 78)
  // zod's English message, as the README shows it (main.ts loads zod with English only).
  assert.match(err, /upstreams\[0\]\.url: Invalid URL/)
  assert.match(err, /gateway\.yaml/)
})

describe('graceful shutdown with an upload still arriving', () => {
  /**
   * Graceful shutdown of the real process: "lets in-flight requests and streams finish for up to
   * server.shutdownTimeoutMs". A request whose body is still arriving is in flight too, but drain()
   * must count it, or it sees nothing to wait for and cuts that connection at once.
   */
  const sims: Simulator[] = []
  after(async () => {
    killGatewayProcesses()
    await Promise.all(sims.map((s) => s.close()))
  })

  test(
    'SIGTERM lets a request whose body is still uploading finish',
    async () => {
      const sim = await startSimulator({ tokens: 4 })
      sims.push(sim)
      const config = configFile(`log: { level: info }\nserver: { shutdownTimeoutMs: 5000 }\nupstreams:\n  - name: sim\n    url: ${sim.url}\n    models: ["*"]\n`)
      const { child, url, exited, logs } = await startGatewayProcess(['--config', config])
      await waitReady(url)
      const port = Number(new URL(url).port)
      const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a prompt that takes a moment to upload' }] })
      const socket = net.connect(port, '127.0.0.1')
      let response = ''
      socket.on('data', (d: Buffer) => (response += d.toString('latin1')))
      socket.on('error', () => undefined)
      // A reset is reported by the assertion below (with what did arrive), not as the socket's error.
      const closed = new Promise((resolve) => socket.once('close', resolve))
      await once(socket, 'connect')
      // `Expect: 100-continue`: the gateway answers 100 Continue in the same turn as it takes the
      // request, so once that has come the request is open there, however busy the machine.
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nexpect: 100-continue\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`)
      await eventually(() => response.startsWith('HTTP/1.1 100 Continue\r\n\r\n'), { what: 'the gateway to take the request (100 Continue)' })
      child.kill('SIGTERM')
      // The rest of the body goes only once the drain has begun.
      await eventually(() => logs().includes('draining in-flight requests'), { what: 'the drain to begin' })
      if (!socket.destroyed) socket.write(body.slice(20))
      let timer: NodeJS.Timeout | undefined
      // Bounded for a gateway that neither answers nor closes; it closes the connection once it answered.
      await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, 15_000)))])
      clearTimeout(timer)
      socket.destroy()
      assert.equal(await exited, 0)
      assert.match(response, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, `the upload in progress at SIGTERM was cut: ${JSON.stringify(response.slice(0, 120))}`)
    },
  )
})
