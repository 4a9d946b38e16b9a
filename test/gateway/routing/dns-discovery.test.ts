// npm test: a process of its own (it mocks setTimeout, which work left running by files before it in a shared process also calls)
import assert from 'node:assert/strict'
import { createSocket, type Socket } from 'node:dgram'
import { isIPv4 } from 'node:net'
import { after, before, test } from 'node:test'
import { DnsDiscovery, dnsResolver } from '../../../gateway/src/routing/dns-discovery.ts'

/** A resolver whose answers the test scripts; `null` makes the next resolution fail. */
function scriptedResolver(answers: (readonly string[] | null)[]) {
  const calls: string[] = []
  const resolve = async (hostname: string): Promise<readonly string[]> => {
    calls.push(hostname)
    const next = answers.length > 1 ? answers.shift()! : answers[0]!
    if (next === null) throw Object.assign(new Error(`queryA ESERVFAIL ${hostname}`), { code: 'ESERVFAIL' })
    return next
  }
  return { resolve, calls }
}

test('reports added and removed addresses; failures and empty answers keep the last set', async () => {
  const { resolve } = scriptedResolver([
    ['10.0.0.1', '10.0.0.2'],
    ['10.0.0.2', '10.0.0.3', 'fd00::1'],
    null,
    [],
    ['10.0.0.3', '10.0.0.2', 'fd00::1'],
    ['10.0.0.3'],
  ])
  const changes: [readonly string[], readonly string[]][] = []
  const errors: unknown[] = []
  const d = new DnsDiscovery({ hostname: 'vllm.svc', intervalMs: 1_000, resolve, onChange: (a, r) => changes.push([a, r]), onError: (e) => errors.push(e) })
  for (let i = 0; i < 6; i++) await d.refresh()
  assert.deepEqual(changes, [
    [['10.0.0.1', '10.0.0.2'], []],
    [['10.0.0.3', 'fd00::1'], ['10.0.0.1']],
    [[], ['10.0.0.2', 'fd00::1']],
  ])
  assert.equal(errors.length, 2, 'the failure and the empty answer')
  assert.deepEqual(d.addresses(), ['10.0.0.3'])
})

test('a failure on the very first resolution reports nothing and the next success fills the set', async () => {
  const { resolve } = scriptedResolver([null, ['10.0.0.9']])
  const changes: unknown[] = []
  const d = new DnsDiscovery({ hostname: 'h', intervalMs: 1_000, resolve, onChange: (a, r) => changes.push([a, r]), onError: () => {} })
  await d.refresh()
  assert.deepEqual(changes, [])
  await d.refresh()
  assert.deepEqual(changes, [[['10.0.0.9'], []]])
})

test('start() resolves at once and then every interval until stop()', async (t) => {
  // On a mocked clock: each interval is a tick, not a wait, and "nothing after stop()" is checked
  // over a long stretch of time that passes at once.
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const { resolve, calls } = scriptedResolver([['10.0.0.1'], ['10.0.0.1', '10.0.0.2']])
  const seen: string[][] = []
  const d = new DnsDiscovery({ hostname: 'h', intervalMs: 20, resolve, onChange: () => seen.push(d.addresses()) })
  await d.start()
  assert.deepEqual(seen, [['10.0.0.1']])
  const settle = () => new Promise<void>((r) => setImmediate(r))
  t.mock.timers.tick(19)
  await settle()
  assert.equal(calls.length, 1, 'not before the interval')
  t.mock.timers.tick(1)
  await settle()
  assert.equal(calls.length, 2)
  t.mock.timers.tick(20)
  await settle()
  assert.equal(calls.length, 3)
  assert.deepEqual(seen, [['10.0.0.1'], ['10.0.0.1', '10.0.0.2']])
  d.stop()
  t.mock.timers.tick(10_000)
  await settle()
  assert.equal(calls.length, 3, 'no resolution after stop()')
})

test('an onChange that throws is reported and does not stop discovery', async () => {
  const { resolve } = scriptedResolver([['10.0.0.1'], ['10.0.0.2']])
  const errors: unknown[] = []
  const d = new DnsDiscovery({ hostname: 'h', intervalMs: 1_000, resolve, onChange: () => { throw new Error('boom') }, onError: (e) => errors.push(e) })
  await d.refresh()
  await d.refresh()
  assert.equal(errors.length, 2)
  assert.deepEqual(d.addresses(), ['10.0.0.2'])
})

// The real resolver against a tiny authoritative DNS server on 127.0.0.1.
const records = new Map<string, string[]>()
let server: Socket
let serverPort = 0

function encodeAnswer(query: Buffer): Buffer {
  let off = 12
  const labels: string[] = []
  while (query[off]! !== 0) {
    const len = query[off]!
    labels.push(query.subarray(off + 1, off + 1 + len).toString('ascii'))
    off += len + 1
  }
  const qtype = query.readUInt16BE(off + 1)
  const questionEnd = off + 5
  const name = labels.join('.').toLowerCase()
  const known = records.get(name)
  const answers = (known ?? []).filter((a) => (qtype === 1 ? isIPv4(a) : qtype === 28 ? !isIPv4(a) : false))
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2)
  header.writeUInt16BE(known ? 0x8580 : 0x8583, 2) // response, authoritative, NOERROR / NXDOMAIN
  header.writeUInt16BE(1, 4)
  header.writeUInt16BE(answers.length, 6)
  const rrs = answers.map((a) => {
    const rdata = qtype === 1 ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a)
    const rr = Buffer.alloc(12)
    rr.writeUInt16BE(0xc00c, 0)
    rr.writeUInt16BE(qtype, 2)
    rr.writeUInt16BE(1, 4)
    rr.writeUInt32BE(5, 6)
    rr.writeUInt16BE(rdata.length, 10)
    return Buffer.concat([rr, rdata])
  })
  return Buffer.concat([header, query.subarray(12, questionEnd), ...rrs])
}

function ipv6Bytes(a: string): Buffer {
  const [head, tail] = a.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  const buf = Buffer.alloc(16)
  groups.forEach((g, i) => buf.writeUInt16BE(parseInt(g, 16), i * 2))
  return buf
}

before(async () => {
  server = createSocket('udp4')
  server.on('message', (msg, rinfo) => server.send(encodeAnswer(msg), rinfo.port, rinfo.address))
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r))
  serverPort = server.address().port
})

after(() => {
  server.close()
})

test('the real resolver asks for A and AAAA and merges them; NXDOMAIN keeps the last set', async () => {
  const resolve = dnsResolver({ servers: [`127.0.0.1:${serverPort}`], timeoutMs: 500, tries: 1 })
  records.set('vllm.velox.test', ['10.1.0.1', '10.1.0.2', 'fd00::7'])
  assert.deepEqual([...(await resolve('vllm.velox.test'))].sort(), ['10.1.0.1', '10.1.0.2', 'fd00::7'])
  assert.deepEqual(await resolve('10.9.9.9'), ['10.9.9.9'], 'an address needs no lookup')
  await assert.rejects(resolve('missing.velox.test'))

  const changes: unknown[] = []
  const errors: unknown[] = []
  const d = new DnsDiscovery({ hostname: 'vllm.velox.test', intervalMs: 1_000, resolve, onChange: (a, r) => changes.push([a, r]), onError: (e) => errors.push(e) })
  await d.refresh()
  records.delete('vllm.velox.test')
  await d.refresh()
  assert.equal(errors.length, 1)
  assert.deepEqual(d.addresses(), ['10.1.0.1', '10.1.0.2', 'fd00::7'])
  records.set('vllm.velox.test', ['10.1.0.2'])
  await d.refresh()
  assert.deepEqual(changes, [
    [['10.1.0.1', '10.1.0.2', 'fd00::7'], []],
    [[], ['10.1.0.1', 'fd00::7']],
  ])
})
