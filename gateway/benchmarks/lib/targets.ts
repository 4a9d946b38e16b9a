/**
 * Starting the things we measure: simulator, gateway and naive proxy, pinned per the core plan,
 * each awaited until it actually serves. And metering what a measured process costs while it works.
 */
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { stringify } from 'yaml'
import { GatewayConfigSchema, type GatewayConfigInput } from '../../src/config/schema.ts'

type UpstreamConfigInput = NonNullable<GatewayConfigInput['upstreams']>[number]
import type { RequestSpec } from './load.ts'
import type { ManagedProcess } from './processes.ts'
import { GcTraceCounter, scrapeGc, snapshotProcessTree, type GcTotals, type ProcSnapshot } from './proc-stats.ts'
import type { BenchContext } from './scenario.ts'
import { startNginx } from './nginx.ts'
import { freePort } from '../../src/cluster/free-port.ts'

export const REPO_ROOT = resolve(import.meta.dirname, '../../..')
/**
 * The node flags the gateway image sets (`NODE_OPTIONS` in gateway/Dockerfile), given to every
 * gateway the harness starts, before `--gateway-node-args` (a later `--v8-pool-size=4` wins).
 */
export const GATEWAY_IMAGE_NODE_ARGS: readonly string[] = ['--v8-pool-size=1']
const NAIVE_PROXY_ENTRY = resolve(import.meta.dirname, '../reference/naive-proxy.ts')
const READY_TIMEOUT_MS = 20_000

/** Something the load generator sends requests to. */
export interface Target {
  name: string
  /** Origin, e.g. http://127.0.0.1:18080 */
  url: string
  /** The process in the middle whose cost is reported; null when going direct to the simulator. */
  process: ManagedProcess | null
  metricsUrl: string | null
  gcTrace: GcTraceCounter | null
}

export interface SimulatorOptions {
  /**
   * beside-gateway (default, latency scenarios): the simulator shares the gateway's core, so the
   * direct path and the gateway path cross between cores equally often (client core <-> other core)
   * and "added" holds the gateway's own work, not an extra cross-core wake-up.
   * beside-load-generator (throughput scenarios): the gateway gets its core to itself.
   */
  placement?: 'beside-gateway' | 'beside-load-generator'
  ttftMs?: number
  interTokenMs?: number
  tokens?: number
  models?: string[]
  name?: string
}

export interface Simulator {
  url: string
  process: ManagedProcess
}

/** The model every benchmark request asks for. */
export const BENCH_MODEL = 'bench-model'

export async function startSimulator(ctx: BenchContext, options: SimulatorOptions = {}): Promise<Simulator> {
  const args = [
    ctx.options.simulatorEntry,
    '--host', '127.0.0.1',
    '--port', '0',
    '--ttft-ms', String(options.ttftMs ?? 0),
    '--inter-token-ms', String(options.interTokenMs ?? 0),
    '--tokens', String(options.tokens ?? 16),
    '--models', (options.models ?? [BENCH_MODEL]).join(','),
  ]
  const sim = ctx.processes.start({ name: options.name ?? 'simulator', command: process.execPath, args, cpus: options.placement === 'beside-load-generator' ? ctx.cores.loadGenerator : ctx.cores.gateway })
  const url = await sim.waitForLine(listeningUrl, READY_TIMEOUT_MS)
  return { url, process: sim }
}

export interface GatewayOptions {
  name?: string
  /** Entry point instead of the run's `--gateway` (the baseline of an A/B). */
  entry?: string
  /** Defaults to the gateway core; a multi-worker gateway gets every core. */
  cpus?: string | null
  /** Node arguments after the run's `--gateway-node-args` (e.g. a preload). */
  nodeArgs?: readonly string[]
  /** Added to the gateway's environment. */
  env?: Readonly<Record<string, string>>
}

/**
 * Starts `node <gateway main> --config FILE` with `config` (server.host/port are filled in) and
 * waits until GET /readyz answers 200, i.e. pools are warm.
 */
export async function startGateway(ctx: BenchContext, config: GatewayConfigInput, options: GatewayOptions = {}): Promise<Target> {
  const name = options.name ?? 'gateway'
  const port = await freePort()
  // A short drain deadline: the harness stops the gateway only when nothing is in flight.
  const full: GatewayConfigInput = { ...config, server: { shutdownTimeoutMs: 1_000, ...config.server, host: '127.0.0.1', port }, log: config.log ?? { level: 'warn' } }
  // Validate here so a harness mistake fails with the schema's message, not as a gateway crash.
  GatewayConfigSchema.parse(full)
  const configFile = join(ctx.workDir, `${name}.yaml`)
  writeFileSync(configFile, stringify(full))
  const gcTrace = ctx.options.gatewayNodeArgs.includes('--trace-gc') ? new GcTraceCounter() : null
  const gateway = ctx.processes.start({
    name,
    command: process.execPath,
    args: [...GATEWAY_IMAGE_NODE_ARGS, ...ctx.options.gatewayNodeArgs, ...(options.nodeArgs ?? []), options.entry ?? ctx.options.gatewayEntry, '--config', configFile],
    cpus: options.cpus === undefined ? ctx.cores.gateway : options.cpus,
    env: { ...process.env, NODE_ENV: 'production', ...options.env },
    ...(gcTrace ? { onLine: gcTrace.onLine } : {}),
  })
  const url = `http://127.0.0.1:${port}`
  await waitForReady(gateway, `${url}/readyz`)
  return { name, url, process: gateway, metricsUrl: `${url}/metrics`, gcTrace }
}

export async function startNaiveProxy(ctx: BenchContext, upstreamUrl: string): Promise<Target> {
  const proxy = ctx.processes.start({
    name: 'naive-proxy',
    command: process.execPath,
    args: [NAIVE_PROXY_ENTRY, '--upstream', upstreamUrl],
    cpus: ctx.cores.gateway,
    env: { ...process.env, NODE_ENV: 'production' },
  })
  const url = await proxy.waitForLine(listeningUrl, READY_TIMEOUT_MS)
  return { name: 'naive-proxy', url, process: proxy, metricsUrl: null, gcTrace: null }
}

export function directTarget(sim: Simulator): Target {
  return { name: 'direct', url: sim.url, process: null, metricsUrl: null, gcTrace: null }
}

/**
 * A gateway config over `upstreams` with the response cache off: the benchmark requests repeat,
 * and with the (default-on) exact cache every one after the first would be answered from memory,
 * measuring the cache instead of the proxy path. The cache-hit scenario measures the cache itself.
 */
export function proxyConfig(upstreams: UpstreamConfigInput[]): GatewayConfigInput {
  return { log: { level: 'warn' }, cache: { enabled: false }, upstreams }
}

/** The gateway config every standard scenario uses: one upstream serving every model. */
export function singleUpstreamConfig(simulatorUrl: string): GatewayConfigInput {
  return proxyConfig([{ name: 'sim', url: simulatorUrl, models: ['*'], pool: { connections: 64, warm: 8 } }])
}

/**
 * Simulator, and in front of it the gateway, the naive proxy and (when installed) nginx: the
 * standard targets, direct first.
 */
export async function startStandardTargets(ctx: BenchContext, simulatorOptions: SimulatorOptions): Promise<{ targets: Target[]; simulator: Simulator }> {
  const simulator = await startSimulator(ctx, simulatorOptions)
  const baselineEntry = ctx.options.baselineGatewayEntry
  const [gateway, baseline, naive, nginx] = await Promise.all([
    startGateway(ctx, singleUpstreamConfig(simulator.url)),
    // --baseline-gateway: another checkout's gateway on the same config, measured in the same rounds.
    baselineEntry === null ? null : startGateway(ctx, singleUpstreamConfig(simulator.url), { name: 'baseline-gateway', entry: baselineEntry, nodeArgs: ctx.options.baselineNodeArgs }),
    startNaiveProxy(ctx, simulator.url),
    startNginx(ctx, simulator.url),
  ])
  return { targets: [directTarget(simulator), gateway, ...(baseline === null ? [] : [baseline]), naive, ...(nginx === null ? [] : [nginx])], simulator }
}

export function listeningUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const event = JSON.parse(line) as { event?: unknown; url?: unknown }
    return event.event === 'listening' && typeof event.url === 'string' ? event.url.replace(/\/$/, '') : undefined
  } catch {
    return undefined
  }
}

export async function waitForReady(managed: ManagedProcess, readyUrl: string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  let last = 'no answer'
  while (Date.now() < deadline) {
    if (!managed.running) throw new Error(`${managed.name} exited (${managed.exitStatus}) before ${readyUrl} answered 200\n${managed.recentOutput()}`)
    try {
      const response = await fetch(readyUrl, { signal: AbortSignal.timeout(1_000) })
      await response.arrayBuffer()
      if (response.status === 200) return
      last = `HTTP ${response.status}`
    } catch (error) {
      last = (error as Error).message
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`${managed.name} not ready at ${readyUrl} within ${READY_TIMEOUT_MS} ms (${last})\n${managed.recentOutput()}`)
}

export { freePort }

/** What one intermediary cost over all measured phases. */
export interface TargetCost {
  /** CPU time (user + system) per request, microseconds. */
  cpuUsPerRequest: number
  /** CPU time over wall time while measured: 1.0 is one core fully busy. */
  coreUtilization: number
  rssMiB: number
  peakRssMiB: number
  /** GC pause time per 1000 requests of the whole process (all lanes it served), ms; null when not observable. */
  gcMsPer1kRequests: number | null
  gcCount: number | null
  /** Of them, full mark-compacts. */
  gcMajorCount: number | null
  gcSource: 'metrics' | 'trace-gc' | null
}

/**
 * GC of one process over all its measured phases, whichever lane drove them (the cache and
 * slow-upstream scenarios drive one gateway through two lanes). Scraping /metrics makes the
 * gateway allocate, and that garbage would be collected inside the next measured phase, so the
 * window is scraped once before its first phase and once at report time; the gateway idles
 * between its phases. With --trace-gc, counting lines is free, so that is read per phase.
 */
interface GcWindow {
  atStart: GcTotals | null
  traceMs: number
  traceCount: number
  traceMajorCount: number
  requests: number
}

let gcWindows = new WeakMap<ManagedProcess, GcWindow>()

/** Starts new GC windows: each scenario reports the GC of its own phases, also on a shared process. */
export function resetGcWindows(): void {
  gcWindows = new WeakMap()
}

/** Accumulates a target's CPU and memory (from /proc, which it cannot notice) over its phases. */
export class CostMeter {
  readonly target: Target
  #cpuMs = 0
  #wallMs = 0
  #requests = 0
  #last: ProcSnapshot | null = null

  constructor(target: Target) {
    this.target = target
  }

  async measure<T extends { requests: number }>(phase: () => Promise<T>): Promise<T> {
    const managed = this.target.process
    if (!managed) return phase()
    const gc = await this.#gcWindow(managed)
    const traceBefore = this.target.gcTrace?.totals() ?? null
    const before = snapshotProcessTree(managed.pid)
    const start = performance.now()
    const result = await phase()
    const wall = performance.now() - start
    const after = snapshotProcessTree(managed.pid)
    const traceAfter = this.target.gcTrace?.totals() ?? null
    this.#cpuMs += after.cpuMs - before.cpuMs
    this.#wallMs += wall
    this.#requests += result.requests
    this.#last = after
    gc.requests += result.requests
    if (traceBefore && traceAfter) {
      gc.traceMs += traceAfter.pauseMs - traceBefore.pauseMs
      gc.traceCount += traceAfter.count - traceBefore.count
      gc.traceMajorCount += traceAfter.majorCount - traceBefore.majorCount
    }
    return result
  }

  async report(): Promise<TargetCost | null> {
    const managed = this.target.process
    if (!managed || !this.#last || this.#requests === 0) return null
    const window = gcWindows.get(managed)
    let gc: GcTotals | null = null
    let gcSource: TargetCost['gcSource'] = null
    if (window && this.target.gcTrace) {
      gc = { pauseMs: window.traceMs, count: window.traceCount, majorCount: window.traceMajorCount }
      gcSource = 'trace-gc'
    } else if (window?.atStart && this.target.metricsUrl) {
      const end = await scrapeGc(this.target.metricsUrl)
      if (end) {
        gc = { pauseMs: end.pauseMs - window.atStart.pauseMs, count: end.count - window.atStart.count, majorCount: end.majorCount - window.atStart.majorCount }
        gcSource = 'metrics'
      }
    }
    return {
      cpuUsPerRequest: (this.#cpuMs * 1000) / this.#requests,
      coreUtilization: this.#wallMs > 0 ? this.#cpuMs / this.#wallMs : NaN,
      rssMiB: this.#last.rssMiB,
      peakRssMiB: this.#last.peakRssMiB,
      gcMsPer1kRequests: gc && window ? (gc.pauseMs * 1000) / window.requests : null,
      gcCount: gc ? gc.count : null,
      gcMajorCount: gc ? gc.majorCount : null,
      gcSource,
    }
  }

  async #gcWindow(managed: ManagedProcess): Promise<GcWindow> {
    let window = gcWindows.get(managed)
    if (!window) {
      window = { atStart: null, traceMs: 0, traceCount: 0, traceMajorCount: 0, requests: 0 }
      gcWindows.set(managed, window)
      if (!this.target.gcTrace && this.target.metricsUrl) window.atStart = await scrapeGc(this.target.metricsUrl)
    }
    return window
  }
}

const MESSAGES = [
  { role: 'system', content: 'You are a concise assistant. Answer in one short paragraph and cite no sources.' },
  { role: 'user', content: 'What is the difference between latency and throughput in a network service?' },
  { role: 'assistant', content: 'Latency is how long one request takes; throughput is how many requests finish per second.' },
  { role: 'user', content: 'And why does the tail latency matter more than the average for interactive applications?' },
]

/**
 * A chat completion request body of realistic size (system prompt, a short exchange). `variant`
 * appends a fixed-width number to the last message, so distinct variants are distinct cache keys
 * with the same byte length.
 */
export function chatBody(options: { stream: boolean; maxTokens?: number; model?: string; variant?: number }): string {
  const messages = options.variant === undefined ? MESSAGES : MESSAGES.map((m, i) => (i === MESSAGES.length - 1 ? { ...m, content: `${m.content} #${String(options.variant).padStart(9, '0')}` } : m))
  return JSON.stringify({
    model: options.model ?? BENCH_MODEL,
    messages,
    max_tokens: options.maxTokens ?? 64,
    temperature: 0,
    stream: options.stream,
  })
}

/**
 * A chat completion body of `bytes` bytes that is one long plain prompt, as a long-context request
 * mostly is: the body-size scenario's bodies, and alloc-profile's `--body-bytes`.
 */
export function longPromptBody(bytes: number, maxTokens = 16): string {
  const shell = { model: BENCH_MODEL, max_tokens: maxTokens, temperature: 0, stream: false, messages: [{ role: 'user', content: '' }] }
  const overhead = JSON.stringify(shell).length
  const words = 'the quick brown fox jumps over the lazy dog '
  const content = words.repeat(Math.ceil((bytes - overhead) / words.length)).slice(0, Math.max(0, bytes - overhead))
  return JSON.stringify({ ...shell, messages: [{ role: 'user', content }] })
}

export function chatRequest(body: string): RequestSpec {
  return { method: 'POST', path: '/v1/chat/completions', body: Buffer.from(body), headers: { 'content-type': 'application/json' } }
}

/** A request source whose every request has a body never sent before (a guaranteed cache miss). */
export function uniqueChatRequests(options: { stream: boolean; maxTokens?: number }): () => RequestSpec {
  let counter = 0
  return () => chatRequest(chatBody({ ...options, variant: counter++ }))
}
