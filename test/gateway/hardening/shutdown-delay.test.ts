/**
 * A rollout must not refuse connections: at SIGTERM /readyz fails at once, but the listener keeps
 * accepting and serving for server.shutdownDelayMs (while the load balancer deregisters the
 * instance); only then does the gateway stop listening and drain. SIGINT skips the delay.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { startSimulator } from '../../../gateway/src/simulator/server.ts'
import { configFile, killGatewayProcesses, startGatewayProcess, waitReady } from '../../helpers/process.ts'
import { eventually } from '../../helpers/eventually.ts'

after(killGatewayProcesses)

const chat = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })

const until = (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) => eventually(check, { what, timeoutMs })

test('SIGTERM: readiness fails first, new connections are still served during the delay, then the drain', async () => {
  const sim = await startSimulator({ tokens: 2 })
  const config = configFile(`log: { level: info }\nserver: { shutdownDelayMs: 6000, shutdownTimeoutMs: 5000 }\nupstreams:\n  - { name: sim, url: ${sim.url}, models: ["*"] }\n`)
  try {
    const { child, url, logs } = await startGatewayProcess(['--config', config])
    await waitReady(url)
    const signalledAt = Date.now()
    child.kill('SIGTERM')
    await until('the shutdown began', async () => logs().includes('still accepting connections'))
    const ready = await fetch(`${url}/readyz`, { headers: { connection: 'close' } })
    assert.equal(ready.status, 503)
    assert.deepEqual(await ready.json(), { status: 'shutting down' })
    // A fresh connection during the delay is accepted and served, and asked to close.
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' }, body: chat })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('connection'), 'close')
    await res.arrayBuffer()
    assert.ok(Date.now() - signalledAt < 6000, 'the delay was over before the checks ran; the test proves nothing')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
    assert.ok(Date.now() - signalledAt >= 6000, `exited ${Date.now() - signalledAt} ms after SIGTERM, before the delay ended`)
  } finally {
    await sim.close()
  }
})

test('SIGINT skips the delay', async () => {
  const sim = await startSimulator({ tokens: 2 })
  const config = configFile(`server: { shutdownDelayMs: 30000 }\nupstreams:\n  - { name: sim, url: ${sim.url}, models: ["*"] }\n`)
  try {
    const { child, url } = await startGatewayProcess(['--config', config])
    await waitReady(url)
    const signalledAt = Date.now()
    child.kill('SIGINT')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
    assert.ok(Date.now() - signalledAt < 10_000)
  } finally {
    await sim.close()
  }
})
