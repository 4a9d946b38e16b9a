/**
 * Under DNS discovery every address is a member (`name@address`), so member names are unbounded:
 * velox_upstream_errors_total and the upstream-failure log line must name the upstream. The
 * member here is discovered for real: a small DNS server on 127.0.0.1 (node:dgram) answers the
 * A query for the upstream's hostname (`discovery.servers`), and the address it gives is an
 * upstream that resets every connection.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import { parseConfig } from '../../../gateway/src/config/load.ts'
import { buildServer } from '../../../gateway/src/server.ts'
import { createLogger } from '../../../gateway/src/telemetry/logger.ts'
import { eventually } from '../../helpers/eventually.ts'

const HOST = 'vllm-pods.velox-test'
const queries: string[] = []
const logLines: Array<Record<string, unknown>> = []
let dns: dgram.Socket
let resetting: net.Server
let app: Awaited<ReturnType<typeof buildServer>>
let url: string

/** Answers A queries for HOST with 127.0.0.1; anything else gets an empty NOERROR answer. */
function answer(query: Buffer): Buffer {
  let i = 12
  const labels: string[] = []
  while (query[i] !== 0) {
    labels.push(query.toString('latin1', i + 1, i + 1 + query[i]!))
    i += query[i]! + 1
  }
  const questionEnd = i + 5
  const type = query.readUInt16BE(i + 1)
  const name = labels.join('.')
  queries.push(`${name}/${type}`)
  const a = type === 1 && name === HOST
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2) // the id
  header.writeUInt16BE(0x8180, 2) // a response, recursion desired and available, NOERROR
  header.writeUInt16BE(1, 4)
  header.writeUInt16BE(a ? 1 : 0, 6)
  const question = query.subarray(12, questionEnd)
  if (!a) return Buffer.concat([header, question])
  // The question's name (a pointer to offset 12), A, IN, TTL 0, 4 bytes: 127.0.0.1.
  const record = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1])
  return Buffer.concat([header, question, record])
}

before(async () => {
  dns = dgram.createSocket('udp4')
  dns.on('message', (msg, from) => dns.send(answer(msg), from.port, from.address))
  dns.bind(0, '127.0.0.1')
  await once(dns, 'listening')
  resetting = net.createServer((socket) => socket.resetAndDestroy())
  resetting.listen(0, '127.0.0.1')
  await once(resetting, 'listening')
  const upstreamPort = (resetting.address() as AddressInfo).port
  const config = parseConfig({
    log: { level: 'info' },
    server: { host: '127.0.0.1', port: 0 },
    upstreams: [{ name: 'pods', url: `http://${HOST}:${upstreamPort}`, models: ['m'], pool: { warm: 0 }, discovery: { dns: true, servers: [`127.0.0.1:${(dns.address() as AddressInfo).port}`] } }],
    routing: { health: { intervalMs: 0 } },
  })
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line)); done() } })
  app = await buildServer(config, { logger: createLogger('info', sink), env: {}, defaultMetrics: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await app.velox.warmed
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
})

after(async () => {
  app?.server.closeAllConnections()
  await app?.close()
  resetting?.close()
  dns?.close()
})

test('a DNS-discovered member failing is counted and logged under its upstream\'s name, not its address', async () => {
  assert.ok(queries.includes(`${HOST}/1`), `the gateway asked the DNS server: ${queries.join(', ')}`)
  const added = await eventually(() => logLines.find((l) => l.msg === 'DNS discovery: member added'), { what: 'the discovered member' })
  assert.match(String(added.member), /^pods@127\.0\.0\.1/)

  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': 'dns-1' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) })
  assert.ok(res.status >= 500, `status ${res.status}`)
  await res.arrayBuffer()

  const metrics = await (await fetch(`${url}/metrics`)).text()
  const lines = metrics.split('\n').filter((l) => l.startsWith('velox_upstream_errors_total{'))
  assert.ok(lines.length > 0, 'no upstream error counted')
  for (const l of lines) {
    assert.match(l, /upstream="pods"/)
    assert.ok(!l.includes('127.0.0.1') && !l.includes('@'), `a member address in a label: ${l}`)
  }
  const failure = await eventually(() => logLines.find((l) => l.msg === 'upstream failure' && l.requestId === 'dns-1'), { what: 'the upstream-failure line' })
  assert.equal(failure.upstream, 'pods')
  assert.match(String(failure.member), /^pods@127\.0\.0\.1/, 'the member is on the line, beside the upstream')
})
