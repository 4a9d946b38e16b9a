/**
 * What one open stream holds in the gateway's JS heap, by constructor.
 *
 *   npx node gateway/benchmarks/stream-heap.ts [--streams 1000] [--prompt-bytes 30] [--gateway PATH] [--top 25] [--keep]
 *
 * Starts the simulator (10 tokens/s, long streams) and a gateway in front of it (cache off), takes
 * a heap snapshot of the gateway, opens `--streams` streaming chat completions on connections of
 * their own, waits until every one has its first bytes, and takes a second snapshot. The
 * difference between the two, over the streams, is printed per node type and constructor: bytes
 * and objects per open stream. A heap snapshot runs a full GC first, so garbage is not in it.
 * `--prompt-bytes` sets the size of the user message (long-context prompts). `--keep` leaves the
 * two snapshots in their temporary folder (for Chrome DevTools) and prints where.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { freePort } from '../src/cluster/free-port.ts'
import { type ManagedProcess, ProcessSet } from './lib/processes.ts'
import { listeningUrl, proxyConfig, waitForReady } from './lib/targets.ts'

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    'prompt-bytes': { type: 'string', default: '30' },
    gateway: { type: 'string', default: resolve(import.meta.dirname, '../src/main.ts') },
    top: { type: 'string', default: '25' },
    keep: { type: 'boolean', default: false },
  },
})
const streams = Number(values.streams)
const promptBytes = Number(values['prompt-bytes'])
if (!(Number.isInteger(streams) && streams > 0) || !(Number.isInteger(promptBytes) && promptBytes > 0)) {
  process.stderr.write('--streams and --prompt-bytes must be positive integers\n')
  process.exit(2)
}

const dir = mkdtempSync(join(tmpdir(), 'velox-stream-heap-'))
const processes = new ProcessSet()
const sockets: net.Socket[] = []

async function stopAll(): Promise<void> {
  for (const s of sockets) s.destroy()
  await processes.stopAll()
}
process.on('SIGINT', () => {
  processes.killAllNow()
  process.exit(130)
})

/** SIGUSR2 makes the gateway write a snapshot (into `dir`, its --diagnostic-dir); it answers again once written. */
async function snapshot(gateway: ManagedProcess, readyUrl: string, name: string): Promise<string> {
  const before = new Set(readdirSync(dir))
  process.kill(gateway.pid, 'SIGUSR2')
  let file: string | undefined
  while (file === undefined) {
    await new Promise((r) => setTimeout(r, 100))
    file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
  }
  await waitForReady(gateway, readyUrl)
  const path = join(dir, `${name}.heapsnapshot`)
  renameSync(join(dir, file), path)
  return path
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

/** Self size and count per "type" (objects, closures and natives by constructor name). */
function byConstructor(path: string): { total: number; rows: Map<string, [number, number]> } {
  const s = JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot
  const fields = s.snapshot.meta.node_fields
  const types = s.snapshot.meta.node_types[0]
  const width = fields.length
  const iType = fields.indexOf('type')
  const iName = fields.indexOf('name')
  const iSize = fields.indexOf('self_size')
  const rows = new Map<string, [number, number]>()
  let total = 0
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!
    const named = type === 'object' || type === 'closure' || type === 'native' || type === 'hidden'
    const key = named ? `${type}: ${s.strings[s.nodes[i + iName]!]!.slice(0, 70)}` : type
    const size = s.nodes[i + iSize]!
    total += size
    const row = rows.get(key)
    if (row === undefined) rows.set(key, [size, 1])
    else {
      row[0] += size
      row[1]++
    }
  }
  return { total, rows }
}

try {
  const sim = processes.start({
    name: 'simulator',
    command: process.execPath,
    args: [resolve(import.meta.dirname, '../src/simulator/main.ts'), '--host', '127.0.0.1', '--port', '0', '--inter-token-ms', '100', '--tokens', '600', '--ttft-ms', '0'],
    cpus: null,
  })
  const simUrl = await sim.waitForLine(listeningUrl, 20_000)
  const port = await freePort()
  const config = proxyConfig([{ name: 'sim', url: simUrl, models: ['*'], pool: { connections: streams + 100, warm: 8, maxPending: 1_000 } }])
  writeFileSync(join(dir, 'gateway.yaml'), stringify({ ...config, server: { host: '127.0.0.1', port } }))
  const gateway = processes.start({
    name: 'gateway',
    command: process.execPath,
    args: ['--v8-pool-size=1', '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`, values.gateway, '--config', join(dir, 'gateway.yaml')],
    cpus: null,
    env: { ...process.env, NODE_ENV: 'production' },
  })
  const readyUrl = `http://127.0.0.1:${port}/readyz`
  await waitForReady(gateway, readyUrl)
  const first = await snapshot(gateway, readyUrl, 'before')

  const prompt = 'x'.repeat(promptBytes)
  const body = JSON.stringify({ model: 'velox-sim-1', messages: [{ role: 'user', content: prompt }], max_tokens: 600, stream: true })
  const request = Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
  let open = 0
  for (let i = 0; i < streams; i++) {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request))
    socket.once('data', () => open++)
    socket.on('error', () => {})
    sockets.push(socket)
    // Opened in steps, so the gateway's accept queue never overflows.
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20))
  }
  const deadline = performance.now() + 30_000
  while (open < streams && performance.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  if (open < streams) throw new Error(`only ${open} of ${streams} streams started`)
  const second = await snapshot(gateway, readyUrl, 'open')
  await stopAll()

  const a = byConstructor(first)
  const b = byConstructor(second)
  process.stdout.write(`${streams} open streams, ${promptBytes}-byte prompts: JS heap ${((b.total - a.total) / streams / 1024).toFixed(1)} KiB per stream (snapshot difference)\n`)
  process.stdout.write('| bytes per stream | objects per stream | type: constructor |\n|--:|--:|---|\n')
  const rows = [...b.rows].map(([key, [size, count]]) => {
    const [size0, count0] = a.rows.get(key) ?? [0, 0]
    return { key, bytes: (size - size0) / streams, objects: (count - count0) / streams }
  })
  rows.sort((x, y) => y.bytes - x.bytes)
  for (const r of rows.slice(0, Number(values.top))) process.stdout.write(`| ${r.bytes.toFixed(0)} | ${r.objects.toFixed(2)} | ${r.key} |\n`)
  if (values.keep) process.stdout.write(`snapshots: ${first} ${second} (${(statSync(second).size / 1e6).toFixed(0)} MB)\n`)
} finally {
  await stopAll()
  if (!values.keep && existsSync(dir)) rmSync(dir, { recursive: true, force: true })
}
