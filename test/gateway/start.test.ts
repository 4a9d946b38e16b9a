/**
 * Constructors only build: timers and I/O begin in start(). A Gateway (with its runtime snapshot
 * and pool sizer) can be constructed, inspected and dropped without leaving anything running.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { promises as dnsPromises } from 'node:dns'
import { parseConfig } from '../../gateway/src/config/load.ts'
import { Gateway } from '../../gateway/src/gateway.ts'
import { startSimulator } from '../../gateway/src/simulator/server.ts'
import { createLogger } from '../../gateway/src/telemetry/logger.ts'
import { GatewayMetrics } from '../../gateway/src/telemetry/metrics.ts'

test('a constructed Gateway has started no timer and no DNS query; start() starts them', async (t) => {
  const sim = await startSimulator()
  const config = parseConfig({
    log: { level: 'silent' },
    upstreams: [
      { name: 'sim', url: sim.url, models: ['*'] },
      { name: 'discovered', url: 'http://velox-start-test.invalid:8000', models: ['x'], discovery: { dns: true } },
    ],
    routing: { health: { intervalMs: 1_000 } },
  })
  const metrics = new GatewayMetrics({ defaultMetrics: false })
  const logger = createLogger('silent')
  const intervals = t.mock.method(globalThis, 'setInterval')
  const timeouts = t.mock.method(globalThis, 'setTimeout')
  const fail = async (): Promise<string[]> => {
    throw Object.assign(new Error('queryA ENOTFOUND'), { code: 'ENOTFOUND' })
  }
  const resolve4 = t.mock.method(dnsPromises.Resolver.prototype, 'resolve4', fail)
  t.mock.method(dnsPromises.Resolver.prototype, 'resolve6', fail)
  const gw = new Gateway(config, logger, metrics, {})
  try {
    assert.equal(intervals.mock.callCount(), 0, 'setInterval in a constructor')
    assert.equal(timeouts.mock.callCount(), 0, 'setTimeout in a constructor')
    assert.equal(resolve4.mock.callCount(), 0, 'DNS query in a constructor')
    assert.equal(gw.warmed, null)

    await gw.start()
    // Positive control: the same spies see the sweeper, the pool sizer, health checks and discovery.
    const timers = intervals.mock.callCount() + timeouts.mock.callCount()
    assert.ok(timers >= 4, `${timers} timers after start()`)
    assert.ok(resolve4.mock.callCount() >= 1, 'discovery resolved the name')
    assert.equal(gw.ready, true)
  } finally {
    await gw.close()
    await sim.close()
  }
})
