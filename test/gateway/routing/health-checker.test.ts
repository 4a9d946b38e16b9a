// npm test: a process of its own (it mocks setTimeout, which work left running by files before it in a shared process also calls)
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, test } from 'node:test'
import { ActiveHealthChecker, type Probe } from '../../../gateway/src/routing/health-checker.ts'
import { Member } from '../../../gateway/src/routing/member.ts'
import { eject, routingConfig } from './helpers.ts'

/** Per-path behaviour of the probed server: a status, or 'hang' to never answer. */
const behaviour = new Map<string, number | 'hang'>()
let server: Server
let origin = ''

before(async () => {
  server = createServer((req, res) => {
    const b = behaviour.get(req.url ?? '') ?? 404
    if (b === 'hang') return
    res.writeHead(b).end()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

after(async () => {
  server.closeAllConnections()
  await new Promise((r) => server.close(r))
})

const cfg = routingConfig({ outlier: { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionMs: 60_000 } })

function member(path: string): Member<string> {
  return new Member(
    { name: path, upstreamName: path, origin, basePath: '', host: new URL(origin).host, weight: 1, priority: 0, ewmaDecayMs: 10_000, outlier: cfg.outlier },
    path,
  )
}

/** What the request path would plug in: an HTTP GET of the member's health path. */
const httpProbe: Probe<string> = async (m, signal) => {
  const res = await fetch(`${m.origin}${m.upstream}`, { signal })
  await res.arrayBuffer()
  return res.ok
}

test('unhealthyThreshold failures take a member out, healthyThreshold successes bring it back', async () => {
  behaviour.set('/a', 200)
  const a = member('/a')
  const changes: [string, boolean][] = []
  const hc = new ActiveHealthChecker({ members: () => [a], probe: httpProbe, intervalMs: 60_000, timeoutMs: 10_000, healthyThreshold: 2, unhealthyThreshold: 3, onChange: (m, h) => changes.push([m.name, h]) })
  await hc.checkNow()
  assert.equal(a.healthy, true)
  behaviour.set('/a', 503)
  await hc.checkNow()
  await hc.checkNow()
  assert.equal(a.healthy, true, 'two failures are below the threshold of 3')
  await hc.checkNow()
  assert.equal(a.healthy, false)
  assert.equal(a.available(0), false)
  behaviour.set('/a', 200)
  await hc.checkNow()
  assert.equal(a.healthy, false, 'one success is below the threshold of 2')
  behaviour.set('/a', 500)
  await hc.checkNow()
  behaviour.set('/a', 200)
  await hc.checkNow()
  assert.equal(a.healthy, false, 'the failure in between restarted the streak')
  await hc.checkNow()
  assert.equal(a.healthy, true)
  assert.deepEqual(changes, [['/a', false], ['/a', true]])
})

test('a probe that outlives timeoutMs fails, and is aborted', async () => {
  behaviour.set('/slow', 'hang')
  const s = member('/slow')
  let aborted = false
  const probe: Probe<string> = async (m, signal) => {
    signal.addEventListener('abort', () => (aborted = true))
    return httpProbe(m, signal)
  }
  const hc = new ActiveHealthChecker({ members: () => [s], probe, intervalMs: 60_000, timeoutMs: 100, healthyThreshold: 1, unhealthyThreshold: 1 })
  const t0 = performance.now()
  await hc.checkNow()
  const took = performance.now() - t0
  assert.equal(s.healthy, false)
  assert.ok(took >= 90, `round took ${took} ms`)
  // The abort is what ends the hung probe (no upper bound on the round's time: a loaded machine is slow).
  assert.ok(aborted)
})

test('a probe that throws or answers false fails; a connection refused fails', async () => {
  const throwing = member('/x')
  const refused = new Member({ ...initOf(throwing), name: 'refused', origin: 'http://127.0.0.1:1' }, '/health')
  const hc = new ActiveHealthChecker<string>({
    members: () => [throwing, refused],
    probe: (m, signal) => (m === throwing ? Promise.reject(new Error('boom')) : httpProbe(m, signal)),
    intervalMs: 60_000,
    timeoutMs: 1_000,
    healthyThreshold: 1,
    unhealthyThreshold: 1,
  })
  await hc.checkNow()
  assert.equal(throwing.healthy, false)
  assert.equal(refused.healthy, false)
})

test('a passing check ends an outlier ejection early', async () => {
  behaviour.set('/e', 200)
  const e = member('/e')
  eject(e, performance.now())
  assert.equal(e.available(performance.now()), false)
  const hc = new ActiveHealthChecker({ members: () => [e], probe: httpProbe, intervalMs: 60_000, timeoutMs: 1_000, healthyThreshold: 1, unhealthyThreshold: 1 })
  await hc.checkNow()
  assert.equal(e.available(performance.now()), true, 'the next request may probe')
})

test('start() probes at once and on a jittered interval; stop() ends it', async (t) => {
  // On a mocked clock, with the jitter's random draws chosen: 20 ms +-50% is 10 ms, then 30 ms.
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const m = member('/t')
  let probes = 0
  const draws = [0, 1]
  let draw = 0
  const hc = new ActiveHealthChecker({
    members: () => [m],
    probe: async () => {
      probes++
      return true
    },
    intervalMs: 20, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1, jitter: 0.5,
    random: () => draws[draw++ % draws.length]!,
  })
  const settle = () => new Promise<void>((r) => setImmediate(r))
  hc.start()
  await settle()
  assert.equal(probes, 1, 'a probe at once')
  t.mock.timers.tick(9)
  await settle()
  assert.equal(probes, 1)
  t.mock.timers.tick(1)
  await settle()
  assert.equal(probes, 2, 'the next after 10 ms (draw 0)')
  t.mock.timers.tick(29)
  await settle()
  assert.equal(probes, 2)
  t.mock.timers.tick(1)
  await settle()
  assert.equal(probes, 3, 'the next after 30 ms (draw 1)')
  hc.stop()
  t.mock.timers.tick(10_000)
  await settle()
  assert.equal(probes, 3, 'no probe after stop()')
})

test('a draining member is not marked, and intervalMs 0 is refused', async () => {
  behaviour.set('/d', 500)
  const d = member('/d')
  d.draining = true
  const hc = new ActiveHealthChecker({ members: () => [d], probe: httpProbe, intervalMs: 1_000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 })
  await hc.checkNow()
  assert.equal(d.healthy, true)
  assert.throws(() => new ActiveHealthChecker({ members: () => [], probe: httpProbe, intervalMs: 0, timeoutMs: 1, healthyThreshold: 1, unhealthyThreshold: 1 }), RangeError)
})

function initOf(m: Member<string>) {
  return { name: m.name, upstreamName: m.upstreamName, origin: m.origin, basePath: m.basePath, host: m.host, weight: m.weight, priority: m.priority, ewmaDecayMs: 10_000, outlier: cfg.outlier }
}
