/**
 * Graceful shutdown of the real process: "lets in-flight requests and streams finish for up to
 * server.shutdownTimeoutMs". A request whose body is still arriving is in flight too, but drain()
 * must count it, or it sees nothing to wait for and cuts that connection at once.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { configFile, killGatewayProcesses, startGatewayProcess, waitReady } from '../helpers/process.ts'

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
    const { child, url, exited } = await startGatewayProcess(['--config', config])
    await waitReady(url)
    const port = Number(new URL(url).port)
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a prompt that takes a moment to upload' }] })
    const socket = net.connect(port, '127.0.0.1')
    let response = ''
    socket.on('data', (d: Buffer) => (response += d.toString('latin1')))
    socket.on('error', () => undefined)
    const closed = once(socket, 'close')
    await once(socket, 'connect')
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`)
    await new Promise((r) => setTimeout(r, 100))
    child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    if (!socket.destroyed) socket.write(body.slice(20))
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3_000))])
    socket.destroy()
    assert.equal(await exited, 0)
    assert.match(response, /^HTTP\/1\.1 200 /, `the upload in progress at SIGTERM was cut: ${JSON.stringify(response.slice(0, 80))}`)
  },
)
