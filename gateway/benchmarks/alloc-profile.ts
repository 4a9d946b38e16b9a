/**
 * Bytes allocated and CPU time per proxied request, under the max-throughput load.
 *
 *   npx node gateway/benchmarks/alloc-profile.ts [--gateway PATH] [--seconds 8] [--warmup 4] [--top 25] [--stacks 0] [--json FILE] [--client auto|undici] [--cpu-only] [--connections 64] [--body-bytes N]
 *
 * Starts the simulator and wrk on core 0 and the gateway (cache off, one upstream, as the
 * benchmark's standard stack) on core 1 with the inspector open, warms it with wrk, then runs
 * wrk again while V8's sampling heap profiler records every allocation (one sample per 512 bytes
 * on average, objects collected by minor and major GCs included). Total bytes over the requests
 * wrk completed while sampling is the allocation per request; it does not depend on how loaded
 * the machine is. CPU time per request is read from /proc for the same window (it does). A
 * second window without the profiler gives the CPU figure undisturbed by the sampling.
 * The heaviest allocation sites are printed, and grouped by where the code lives. `--client`
 * sets the upstream's `pool.client` (undici's pool against the gateway's own, on the same code).
 * `--stacks N` also prints, for the N heaviest sites, the call paths that allocate there.
 * `--cpu-only` skips the profiled window (CPU per request only, for A/B rounds). `--body-bytes N`
 * sends a chat body of N bytes that is one long prompt (the body-size scenario's) instead of the
 * standard one. The collections during the unprofiled window are counted from the gateway's
 * /metrics, full mark-compacts apart.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { stringify } from 'yaml'
import { freePort } from '../src/cluster/free-port.ts'
import { scrapeGc } from './lib/proc-stats.ts'
import { chatBody, longPromptBody, singleUpstreamConfig } from './lib/targets.ts'
import { wrkScript } from './lib/wrk.ts'

const { values } = parseArgs({
  options: {
    gateway: { type: 'string', default: resolve(import.meta.dirname, '../src/main.ts') },
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '4' },
    top: { type: 'string', default: '25' },
    stacks: { type: 'string', default: '0' },
    'cpu-only': { type: 'boolean', default: false },
    connections: { type: 'string', default: '64' },
    json: { type: 'string' },
    client: { type: 'string', default: 'auto' },
    'body-bytes': { type: 'string' },
  },
})

const seconds = Number(values.seconds)
const connections = Number(values.connections)
const dir = mkdtempSync(join(tmpdir(), 'velox-alloc-'))
const children: ChildProcess[] = []

function start(cpus: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn('taskset', ['-c', cpus, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env })
  children.push(child)
  return child
}

function waitForLine(child: ChildProcess, match: (line: string) => string | undefined, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolveLine, reject) => {
    let buffered = ''
    const timer = setTimeout(() => reject(new Error(`no expected line within ${timeoutMs} ms:\n${buffered.slice(-2000)}`)), timeoutMs)
    const onData = (data: Buffer): void => {
      buffered += data.toString()
      for (const line of buffered.split('\n')) {
        const found = match(line)
        if (found !== undefined) {
          clearTimeout(timer)
          child.stdout!.off('data', onData)
          child.stderr!.off('data', onData)
          resolveLine(found)
          return
        }
      }
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', onData)
  })
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // utime + stime, USER_HZ 100
}

async function wrk(url: string, durationSeconds: number): Promise<number> {
  const child = start('0', 'wrk', ['-t', '1', '-c', String(connections), '-d', `${durationSeconds}s`, '--timeout', '5s', '-s', join(dir, 'post.lua'), url])
  const line = await waitForLine(child, (l) => (l.startsWith('WRK_RESULT ') ? l.slice(11) : undefined), (durationSeconds + 15) * 1000)
  const result = JSON.parse(line) as { requests: number; errors: number }
  if (result.errors > 0) throw new Error(`wrk saw ${result.errors} errors`)
  return result.requests
}

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. */
class Inspector {
  readonly #socket: WebSocket
  #next = 1
  readonly #pending = new Map<number, (result: unknown) => void>()
  constructor(socket: WebSocket) {
    this.#socket = socket
    socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: unknown }
      if (message.id === undefined) return
      this.#pending.get(message.id)?.(message.error !== undefined ? Promise.reject(new Error(JSON.stringify(message.error))) : message.result)
      this.#pending.delete(message.id)
    })
  }
  static async open(url: string): Promise<Inspector> {
    const socket = new WebSocket(url)
    await new Promise((ok, fail) => {
      socket.addEventListener('open', ok, { once: true })
      socket.addEventListener('error', fail, { once: true })
    })
    return new Inspector(socket)
  }
  send<T>(method: string, params: object = {}): Promise<T> {
    const id = this.#next++
    this.#socket.send(JSON.stringify({ id, method, params }))
    return new Promise((ok) => this.#pending.set(id, ok as (result: unknown) => void))
  }
  close(): void {
    this.#socket.close()
  }
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number }
  selfSize: number
  children: ProfileNode[]
}

function where(url: string): string {
  if (url.includes('/node_modules/')) return url.slice(url.lastIndexOf('/node_modules/') + 14).split('/')[0]!
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/')
  if (url.includes('/gateway/src/')) return 'gateway'
  return url === '' ? '(vm)' : url
}

async function main(): Promise<void> {
  writeFileSync(join(dir, 'post.lua'), wrkScript(values['body-bytes'] === undefined ? chatBody({ stream: false }) : longPromptBody(Number(values['body-bytes']))))
  const sim = start('0', process.execPath, [resolve(import.meta.dirname, '../src/simulator/main.ts'), '--host', '127.0.0.1', '--port', '0', '--ttft-ms', '0', '--inter-token-ms', '0', '--tokens', '16', '--models', 'bench-model'])
  const simUrl = await waitForLine(sim, (line) => {
    const m = /"event":"listening".*"url":"([^"]+)"/.exec(line)
    return m?.[1]?.replace(/\/$/, '')
  })
  const port = await freePort()
  const config = singleUpstreamConfig(simUrl)
  for (const upstream of config.upstreams ?? []) upstream.pool = { ...upstream.pool, client: values.client as 'auto' | 'undici' }
  writeFileSync(join(dir, 'gateway.yaml'), stringify({ ...config, server: { host: '127.0.0.1', port, shutdownTimeoutMs: 1_000 } }))
  const gateway = start('1', process.execPath, ['--inspect=127.0.0.1:0', values.gateway, '--config', join(dir, 'gateway.yaml')], { ...process.env, NODE_ENV: 'production' })
  const wsUrl = await waitForLine(gateway, (line) => /Debugger listening on (ws:\S+)/.exec(line)?.[1])
  const url = `http://127.0.0.1:${port}/v1/chat/completions`
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) break
    } catch {}
    if (i > 200) throw new Error('gateway not ready')
    await new Promise((r) => setTimeout(r, 100))
  }
  await wrk(url, Number(values.warmup))

  const pid = gateway.pid!
  const metricsUrl = `http://127.0.0.1:${port}/metrics`
  const gcBefore = await scrapeGc(metricsUrl)
  let cpu0 = cpuMs(pid)
  const plainRequests = await wrk(url, seconds)
  const plainCpuUs = ((cpuMs(pid) - cpu0) * 1000) / plainRequests
  const gcAfter = await scrapeGc(metricsUrl)
  const gcLine = gcBefore === null || gcAfter === null ? 'GCs: no /metrics' : `GCs: ${gcAfter.count - gcBefore.count} (${gcAfter.majorCount - gcBefore.majorCount} mark-compacts), ${(gcAfter.pauseMs - gcBefore.pauseMs).toFixed(0)} ms of pauses`
  if (values['cpu-only']) {
    console.log(`requests: ${plainRequests} in ${seconds} s (${(plainRequests / seconds).toFixed(0)} req/s)`)
    console.log(`CPU per request: ${plainCpuUs.toFixed(1)} us`)
    console.log(gcLine)
    return
  }

  const inspector = await Inspector.open(wsUrl)
  await inspector.send('HeapProfiler.enable')
  await inspector.send('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  cpu0 = cpuMs(pid)
  const requests = await wrk(url, seconds)
  const sampledCpuUs = ((cpuMs(pid) - cpu0) * 1000) / requests
  const { profile } = await inspector.send<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling')
  inspector.close()

  const sites = new Map<string, number>()
  const areas = new Map<string, number>()
  /** Per site, bytes by the call path that led there (innermost callers first). */
  const paths = new Map<string, Map<string, number>>()
  let total = 0
  const nameOf = (f: ProfileNode['callFrame']): string => `${f.functionName || '(anonymous)'} ${f.url.replace(/^file:\/\/.*?\/(node_modules|gateway)\//, '$1/')}:${f.lineNumber + 1}`
  const stack: string[] = []
  const walk = (node: ProfileNode): void => {
    const f = node.callFrame
    const site = nameOf(f)
    if (node.selfSize > 0) {
      sites.set(site, (sites.get(site) ?? 0) + node.selfSize)
      const path = stack.slice(-6).reverse().join(' < ')
      let byPath = paths.get(site)
      if (byPath === undefined) paths.set(site, (byPath = new Map()))
      byPath.set(path, (byPath.get(path) ?? 0) + node.selfSize)
      const area = where(f.url)
      areas.set(area, (areas.get(area) ?? 0) + node.selfSize)
      total += node.selfSize
    }
    stack.push(site)
    for (const child of node.children) walk(child)
    stack.pop()
  }
  walk(profile.head)
  const perRequest = (bytes: number): string => `${(bytes / requests).toFixed(0).padStart(6)} B`
  console.log(`requests: ${plainRequests} unprofiled in ${seconds} s, ${requests} profiled`)
  console.log(`allocated per request: ${(total / requests / 1024).toFixed(2)} KB (${(total / requests).toFixed(0)} B)`)
  console.log(`CPU per request: ${plainCpuUs.toFixed(1)} us unprofiled, ${sampledCpuUs.toFixed(1)} us while sampling`)
  console.log(gcLine)
  console.log('\nby where the code lives:')
  for (const [area, bytes] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${perRequest(bytes)}  ${area}`)
  console.log('\nheaviest allocation sites:')
  for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) console.log(`  ${perRequest(bytes)}  ${site}`)
  const ranked = [...sites].sort((a, b) => b[1] - a[1]).slice(0, Number(values.stacks))
  if (ranked.length > 0) console.log('\ncall paths of the heaviest sites:')
  for (const [site] of ranked) {
    console.log(`  ${site}`)
    for (const [path, bytes] of [...paths.get(site)!].sort((a, b) => b[1] - a[1]).slice(0, 4)) console.log(`    ${perRequest(bytes)}  < ${path}`)
  }
  if (values.json !== undefined) {
    writeFileSync(values.json, JSON.stringify({ requests, bytesPerRequest: total / requests, cpuUsPerRequest: plainCpuUs, sampledCpuUsPerRequest: sampledCpuUs, requestsPerSecond: plainRequests / seconds, areas: Object.fromEntries(areas), sites: Object.fromEntries(sites) }, null, 1))
  }
}

try {
  await main()
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
  rmSync(dir, { recursive: true, force: true })
}
