import { test, after, before, describe } from 'node:test'
import assert from 'node:assert/strict'
import { renameSync, writeFileSync } from 'node:fs'
import { parseConfig } from '../../gateway/src/config/load.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, readEvents, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'
import { configFile, startGatewayProcess } from '../helpers/process.ts'
import { eventually } from '../helpers/eventually.ts'
import type { GatewayConfigInput } from '../../gateway/src/config/schema.ts'

const upstream = (name: string, url: string) => ({ name, url, models: ['velox-sim-1'] })

test('a reload swaps upstreams atomically: in-flight streams finish on the old one, a bad config is refused', async () => {
  // A 1 s stream (25 tokens 40 ms apart), so it is still running when the reload happens.
  const a = await startSimulator({ tokens: 25, interTokenMs: 40 })
  const b = await startSimulator()
  const gw = await startGateway({ upstreams: [upstream('a', a.url)] })
  try {
    const inflight = post(`${gw.url}/v1/chat/completions`, chatBody({ stream: true }))
    await eventually(() => a.stats().open === 1, { what: 'the stream to reach upstream a' })
    const result = await gw.app.velox.reload(() => parseConfig({ log: { level: 'silent' }, upstreams: [upstream('b', b.url)] }))
    assert.deepEqual(result, { applied: true, reason: null })
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
    assert.equal(res.headers.get('x-velox-upstream'), 'b')
    await res.arrayBuffer()
    const started = await inflight
    assert.equal(started.headers.get('x-velox-upstream'), 'a')
    const { events } = await readEvents(started)
    assert.equal(events.at(-1), 'data: [DONE]', 'the stream started before the reload was cut')

    const refused = await gw.app.velox.reload(() => parseConfig({ upstreams: [{ name: 'c', url: 'nope', models: ['x'] }] }))
    assert.equal(refused.applied, false)
    assert.match(refused.reason!, /upstreams\[0\]\.url/)
    const still = await post(`${gw.url}/v1/chat/completions`, chatBody())
    assert.equal(still.headers.get('x-velox-upstream'), 'b')
    await still.arrayBuffer()
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    assert.match(metrics, /velox_config_reloads_total\{result="applied"\} 1/)
    assert.match(metrics, /velox_config_reloads_total\{result="rejected"\} 1/)
    assert.match(metrics, /velox_config_generation 2/)
  } finally {
    await gw.close()
    await a.close()
    await b.close()
  }
})

test('reloads under load drop nothing', async () => {
  const a = await startSimulator()
  const b = await startSimulator()
  const gw = await startGateway({ upstreams: [upstream('a', a.url)] })
  try {
    let stop = false
    const statuses: number[] = []
    const clients = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const res = await post(`${gw.url}/v1/chat/completions`, chatBody({ stream: statuses.length % 2 === 0 }))
        await res.arrayBuffer()
        statuses.push(res.status)
      }
    })
    for (let i = 0; i < 6; i++) {
      // Some requests complete between two reloads (on a loaded machine a fixed pause may see none).
      const done = statuses.length
      await eventually(() => statuses.length >= done + 5, { what: 'requests between reloads' })
      const sim = i % 2 === 0 ? b : a
      const r = await gw.app.velox.reload(() => parseConfig({ log: { level: 'silent' }, upstreams: [upstream(`u${i}`, sim.url)] }))
      assert.equal(r.applied, true)
    }
    stop = true
    await Promise.all(clients)
    assert.ok(statuses.length > 50, `only ${statuses.length} requests ran`)
    assert.deepEqual([...new Set(statuses)], [200])
  } finally {
    await gw.close()
    await a.close()
    await b.close()
  }
})

test('the gateway process reloads on a file change and on SIGHUP', async () => {
  const a = await startSimulator()
  const b = await startSimulator()
  const file = configFile('')
  const write = (name: string, url: string) => {
    // Replace the file as editors and ConfigMaps do: write elsewhere, rename over.
    writeFileSync(`${file}.tmp`, `server: { host: 127.0.0.1, port: 0 }\nupstreams:\n  - name: ${name}\n    url: ${url}\n    models: ["*"]\n`)
    renameSync(`${file}.tmp`, file)
  }
  write('a', a.url)
  // Closed whatever happens: a simulator left open would keep this file's process alive.
  const closeSimulators = async (): Promise<void> => {
    await a.close()
    await b.close()
  }
  const started = await startGatewayProcess(['--config', file]).catch(async (err: unknown) => {
    await closeSimulators()
    throw err
  })
  const { child, url, logs, exited } = started
  try {
    const until = async (re: RegExp) => {
      await eventually(() => { assert.match(logs(), re); return true }, { what: `a log line ${re}`, intervalMs: 25 })
    }
    const upstreamOf = async () => {
      const res = await post(`${url}/v1/chat/completions`, chatBody())
      await res.arrayBuffer()
      return res.headers.get('x-velox-upstream')
    }
    assert.equal(await upstreamOf(), 'a')
    write('b', b.url)
    await until(/"generation":2/)
    assert.equal(await upstreamOf(), 'b')
    child.kill('SIGHUP')
    await until(/"generation":3/)
    assert.equal(await upstreamOf(), 'b')
    writeFileSync(file, 'upstreams: 7\n')
    await until(/config reload refused/)
    assert.equal(await upstreamOf(), 'b')
  } finally {
    child.kill('SIGTERM')
    await exited
    await closeSimulators()
  }
})

describe('failover of requests still running across a reload', () => {
  /**
   * A config reload does not take failover away from requests already running: they finish on the
   * old snapshot, and a retry or hedge they send after the swap still finds the old snapshot's
   * pools open.
   */
  let sim: Simulator
  let slow: Awaited<ReturnType<typeof startRawUpstream>>
  let gw: TestGateway
  let config: GatewayConfigInput
  let holding = false
  const held: (() => void)[] = []

  before(async () => {
    sim = await startSimulator()
    // Answers health checks at once and every completion with a 503: at once, or while `holding`
    // once the test releases it.
    slow = await startRawUpstream((req, res) => {
      if (req.method === 'GET') return void res.end('ok')
      req.resume()
      const answer = (): void => {
        res.writeHead(503, { 'content-type': 'application/json' })
        res.end('{"error":{"message":"overloaded","type":"server_error","code":null,"param":null}}')
      }
      if (holding) held.push(answer)
      else answer()
    })
    config = {
      log: { level: 'silent' },
      upstreams: [
        { name: 'flaky', url: slow.url, models: ['*'], priority: 0, pool: { warm: 1 } },
        { name: 'healthy', url: sim.url, models: ['*'], priority: 1, pool: { warm: 1 } },
      ],
      routing: { retry: { maxAttempts: 3, budgetMinPerSecond: 1000 }, health: { intervalMs: 0 }, outlier: { consecutiveFailures: 1000 } },
    }
    gw = await startGateway(config)
  })

  after(async () => {
    await gw.close()
    await slow.close()
    await sim.close()
  })

  test('control: without a reload the 503 fails over to the healthy upstream', async () => {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody())
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(res.headers.get('x-velox-upstream'), 'healthy')
    await res.arrayBuffer()
  })

  test(
    'a request in flight during a reload still fails over when its first upstream answers 503',
    async () => {
      holding = true
      const pending = post(`${gw.url}/v1/chat/completions`, chatBody())
      try {
        await eventually(() => held.length === 1, { what: 'the first attempt to reach the flaky upstream' })
        // Same upstreams: nothing about the healthy member changed, yet it is no longer usable by this request.
        const result = await gw.app.velox.reload(() => parseConfig({ ...config, server: { host: '127.0.0.1', port: 0 } }))
        assert.equal(result.applied, true)
      } finally {
        holding = false
        for (const answer of held.splice(0)) answer()
      }
      const res = await pending
      const text = await res.text()
      assert.equal(res.status, 200, `got ${res.status}: ${text}`)
      assert.equal(res.headers.get('x-velox-upstream'), 'healthy')
    },
  )
})
