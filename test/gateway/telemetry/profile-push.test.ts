/** Continuous profiling: CPU profiles pushed to a Pyroscope-style /ingest (a real HTTP server here). */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { gunzipSync } from 'node:zlib'
import { Profile } from 'pprof-format'
import { TelemetrySchema } from '../../../gateway/src/telemetry/config.ts'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { startProfilePush } from '../../../gateway/src/telemetry/profiling.ts'

test('pushes pprof CPU profiles with the name, labels, time range and token the collector expects', async () => {
  const received: Array<{ url: URL; auth: string | undefined; profile: Buffer }> = []
  let gotOne: () => void = () => {}
  const first = new Promise<void>((r) => (gotOne = r))
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const c of req) chunks.push(c as Buffer)
    const form = await new Request('http://x', { method: 'POST', headers: { 'content-type': req.headers['content-type']! }, body: Buffer.concat(chunks) }).formData()
    const file = form.get('profile') as File
    received.push({ url: new URL(req.url!, 'http://x'), auth: req.headers.authorization, profile: Buffer.from(await file.arrayBuffer()) })
    res.end('ok')
    gotOne()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const config = TelemetrySchema.parse({ profiling: { pushUrl: url, intervalMs: 1000, labels: { region: 'test-1' }, tokenEnv: 'VELOX_TEST_PYRO_TOKEN' } }).profiling
  const pusher = await startProfilePush(config, { VELOX_TEST_PYRO_TOKEN: 'pt' }, createLogger('silent'))
  assert.ok(pusher)
  try {
    // Busy work for the profiler to see.
    const until = Date.now() + 1200
    let x = 0
    while (Date.now() < until) x += Math.sqrt(x + 1)
    await first
  } finally {
    await pusher.stop()
    server.close()
  }
  const r = received[0]!
  assert.equal(r.url.pathname, '/ingest')
  assert.equal(r.url.searchParams.get('name'), 'velox.gateway.cpu{region=test-1}')
  assert.equal(r.url.searchParams.get('format'), 'pprof')
  assert.ok(Number(r.url.searchParams.get('until')) >= Number(r.url.searchParams.get('from')))
  assert.equal(r.auth, 'Bearer pt')
  const profile = Profile.decode(gunzipSync(r.profile))
  assert.ok(profile.sample.length > 0, 'an empty profile')
})

test('off unless configured; a tokenEnv that is not set is refused', async () => {
  const off = TelemetrySchema.parse({}).profiling
  assert.equal(await startProfilePush(off, {}, createLogger('silent')), null)
  const bad = TelemetrySchema.parse({ profiling: { pushUrl: 'http://127.0.0.1:1', tokenEnv: 'NOPE_NOT_SET' } }).profiling
  await assert.rejects(startProfilePush(bad, {}, createLogger('silent')), /NOPE_NOT_SET is not set/)
})
