/**
 * Thousands of open streams through one gateway process: 5,000 concurrent `stream: true` chat
 * completions at 10 tokens per second each (the simulator's inter-token delay 100 ms), direct and
 * through the gateway (and nginx when installed), one target at a time. Each stream is its own
 * keep-alive-less connection from a small raw-socket client; every socket read that carries SSE
 * events is timed, so the gap between consecutive reads of a stream is its inter-chunk time.
 *
 * Reported per target: inter-chunk gap percentiles (added = gateway's minus direct's), events and
 * streams that arrived complete (nothing lost: every stream ends with `data: [DONE]` and carries
 * as many events as direct's), resident memory per open stream, and chunks per second per core
 * (events forwarded over the gateway's CPU seconds while all streams ran).
 *
 * Memory per open stream is what the gateway holds for it: the gateway runs with a preload
 * (lib/heap-probe.ts) that, when asked, runs one memory-reducing full GC and reports its memory;
 * it is asked once idle before the streams and once with every stream open, and the difference
 * over the streams open at that moment is the figure checked (RSS, and apart the JS heap and
 * array buffers); a run where streams failed says so in the note. Without
 * the GC the figure moved by a quarter between runs of the same code with V8's collection
 * schedule. The one GC with every stream open stops the gateway for a moment: inter-chunk gaps
 * that span it are left out of the percentiles and counted in a note.
 */
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { HEAP_PROBE_PRELOAD, readHeapProbe, type HeapProbeSample } from '../lib/heap-probe.ts'
import { NGINX_MISSING_NOTE, startNginx } from '../lib/nginx.ts'
import { snapshotProcessTree } from '../lib/proc-stats.ts'
import { LatencyRecorder } from '../lib/recorder.ts'
import { check, computeAdded, findRow, optionalRow, type BenchContext, type Measurement, type ResultRow, type Scenario } from '../lib/scenario.ts'
import { chatBody, directTarget, proxyConfig, startGateway, startSimulator, type Target } from '../lib/targets.ts'

interface Plan {
  streams: number
  tokens: number
  interTokenMs: number
  /** Streams are opened evenly over this long, so the connection storm is not what is measured. */
  rampMs: number
}

const DONE = Buffer.from('data: [DONE]')
const EVENT = Buffer.from('data: ')

interface StreamStats {
  gaps: LatencyRecorder
  events: number
  complete: number
  failed: number
  /** Events per stream: the simulator sends the same number on every stream. */
  perStream: Set<number>
  /** Why streams failed (status line, socket error, timeout), counted. */
  failures: Map<string, number>
  /** While the heap probe's GC may run (performance.now() in this process): gaps spanning it are not recorded. */
  pauseFrom: number | null
  pauseTo: number | null
  gapsSpanningProbe: number
  /** Streams whose response head arrived and that have not ended: what memory per stream divides by. */
  streaming: number
}

/** One stream on its own connection; resolves when it ended (or failed). */
function openStream(port: number, request: Buffer, stats: StreamStats, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ port, host: '127.0.0.1', noDelay: true })
    let head = true
    let headBuffer = ''
    let lastAt = 0
    let events = 0
    let done = false
    let settled = false
    const finish = (ok: boolean, why = ''): void => {
      if (settled) return
      settled = true
      if (!head) stats.streaming--
      if (ok) {
        stats.complete++
        stats.perStream.add(events)
      } else {
        stats.failed++
        stats.failures.set(why, (stats.failures.get(why) ?? 0) + 1)
      }
      stats.events += events
      clearTimeout(timer)
      socket.destroy()
      resolve()
    }
    const timer = setTimeout(() => finish(false, 'no end before the deadline'), Math.max(1, deadline - Date.now()))
    socket.on('connect', () => socket.write(request))
    socket.on('data', (chunk: Buffer) => {
      const now = performance.now()
      let body = chunk
      if (head) {
        headBuffer += chunk.toString('latin1')
        const end = headBuffer.indexOf('\r\n\r\n')
        if (end === -1) return
        if (!headBuffer.startsWith('HTTP/1.1 200')) return finish(false, headBuffer.slice(0, headBuffer.indexOf('\r\n')))
        head = false
        stats.streaming++
        body = Buffer.from(headBuffer.slice(end + 4), 'latin1')
      }
      let count = 0
      for (let at = body.indexOf(EVENT); at !== -1; at = body.indexOf(EVENT, at + EVENT.length)) count++
      if (count === 0) return
      if (lastAt > 0) {
        if (stats.pauseFrom !== null && now >= stats.pauseFrom && lastAt <= (stats.pauseTo ?? Infinity)) stats.gapsSpanningProbe++
        else stats.gaps.record(now - lastAt)
      }
      lastAt = now
      events += count
      if (!done && body.includes(DONE)) {
        done = true
        finish(true)
      }
    })
    socket.on('error', (err: NodeJS.ErrnoException) => finish(false, `socket ${err.code ?? err.message}`))
    socket.on('close', () => finish(false, `closed after ${events} events`))
  })
}

interface HeldMemory {
  /** Streams open through the gateway when the sample was taken. */
  open: number
  /** After a memory-reducing GC, per open stream (KiB): RSS, JS heap, array buffers. */
  rssKiB: number
  heapKiB: number
  arrayBuffersKiB: number
  before: HeapProbeSample
  full: HeapProbeSample
}

async function measureTarget(
  ctx: BenchContext,
  target: Target,
  plan: Plan,
  request: Buffer,
  probeFile: string | null,
): Promise<{ row: ResultRow; stats: StreamStats; perStreamKiB: number | null; held: HeldMemory | null; chunksPerCoreSecond: number | null; rssMiB: number | null }> {
  const port = Number(new URL(target.url).port)
  const stats: StreamStats = { gaps: new LatencyRecorder(), events: 0, complete: 0, failed: 0, perStream: new Set(), failures: new Map(), pauseFrom: null, pauseTo: null, gapsSpanningProbe: 0, streaming: 0 }
  const streamMs = plan.tokens * plan.interTokenMs
  const deadline = Date.now() + plan.rampMs + streamMs * 2 + 10_000
  const pid = target.process?.pid ?? null
  const probe = pid !== null && probeFile !== null ? (): Promise<HeapProbeSample> => readHeapProbe(pid, probeFile) : null
  const heldBefore = probe === null ? null : await probe()
  const before = pid === null ? null : snapshotProcessTree(pid)
  const running: Promise<void>[] = []
  const started = performance.now()
  for (let i = 0; i < plan.streams; i++) {
    const due = started + (i * plan.rampMs) / plan.streams
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    running.push(openStream(port, request, stats, deadline))
  }
  // Every stream is open now (the first ones still run: a stream outlasts the ramp).
  await new Promise((r) => setTimeout(r, Math.min(streamMs / 4, 2_000)))
  const full = pid === null ? null : snapshotProcessTree(pid)
  let heldFull: HeapProbeSample | null = null
  // The streams open when the probe is asked (all of them unless some failed or ended early).
  let openAtProbe = plan.streams
  if (probe !== null) {
    openAtProbe = stats.streaming
    stats.pauseFrom = performance.now()
    heldFull = await probe()
    stats.pauseTo = performance.now()
  }
  await Promise.all(running)
  const after = pid === null ? null : snapshotProcessTree(pid)
  const wallMs = performance.now() - started
  const cpuMs = before !== null && after !== null ? after.cpuMs - before.cpuMs : null
  const row: ResultRow = {
    target: target.name,
    metric: 'inter-chunk',
    latency: stats.gaps.summary(),
    requestsPerSecond: (stats.complete * 1000) / wallMs,
    errors: stats.failed,
    addedOver: target.name === 'direct' ? null : 'direct',
    added: null,
    cost: null,
    extra: {
      streams: plan.streams,
      complete: stats.complete,
      events: stats.events,
      eventsPerSecond: Math.round((stats.events * 1000) / wallMs),
      ...(cpuMs !== null ? { coreUtilization: Number((cpuMs / wallMs).toFixed(3)) } : {}),
      ...(full !== null && before !== null ? { rssBeforeMiB: Math.round(before.rssMiB), rssFullMiB: Math.round(full.rssMiB) } : {}),
    },
  }
  const perStream = (bytes: number): number => bytes / 1024 / Math.max(1, openAtProbe)
  const held =
    heldBefore !== null && heldFull !== null
      ? {
          open: openAtProbe,
          rssKiB: perStream(heldFull.rss - heldBefore.rss),
          heapKiB: perStream(heldFull.heapUsed - heldBefore.heapUsed),
          arrayBuffersKiB: perStream(heldFull.arrayBuffers - heldBefore.arrayBuffers),
          before: heldBefore,
          full: heldFull,
        }
      : null
  return {
    row,
    stats,
    held,
    perStreamKiB: full !== null && before !== null ? ((full.rssMiB - before.rssMiB) * 1024) / plan.streams : null,
    chunksPerCoreSecond: cpuMs !== null && cpuMs > 0 ? (stats.events * 1000) / cpuMs : null,
    rssMiB: full?.rssMiB ?? null,
  }
}

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0)

export const streamsAtScale: Scenario = {
  name: 'streams-at-scale',
  title: 'Streams at scale: thousands of open streams through one process',
  description: '5,000 concurrent streams at 10 tokens/s each (1,000 with --quick), direct vs gateway (vs nginx): inter-chunk gaps, nothing lost, memory per stream, chunks/s per core.',
  async run(ctx): Promise<Measurement> {
    const plan: Plan = ctx.options.quick ? { streams: 1_000, tokens: 60, interTokenMs: 100, rampMs: 3_000 } : { streams: 5_000, tokens: 150, interTokenMs: 100, rampMs: 5_000 }
    // The simulator beside the load generator: the gateway's core is its own.
    const simulator = await startSimulator(ctx, { placement: 'beside-load-generator', tokens: plan.tokens, interTokenMs: plan.interTokenMs, ttftMs: 0 })
    // Enough upstream connections for every stream: a stream holds its connection for its whole life.
    const probeFile = join(ctx.workDir, 'gateway-heap-probe.json')
    const gateway = await startGateway(ctx, proxyConfig([{ name: 'sim', url: simulator.url, models: ['*'], pool: { connections: plan.streams + 100, warm: 8, maxPending: 1_000 } }]), {
      nodeArgs: ['--import', HEAP_PROBE_PRELOAD],
      env: { VELOX_BENCH_HEAP_PROBE: probeFile },
    })
    const nginx = await startNginx(ctx, simulator.url)
    const targets: Target[] = [directTarget(simulator), gateway, ...(nginx === null ? [] : [nginx])]
    const body = chatBody({ stream: true, maxTokens: plan.tokens })
    const request = Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
    const results = new Map<string, Awaited<ReturnType<typeof measureTarget>>>()
    for (const target of targets) {
      ctx.log(`  ${target.name}: ${plan.streams} streams`)
      results.set(target.name, await measureTarget(ctx, target, plan, request, target === gateway ? probeFile : null))
    }
    const rows = computeAdded([...results.values()].map((r) => r.row))
    const direct = results.get('direct')!
    const gw = results.get('gateway')!
    const gwRow = findRow(rows, 'gateway', 'inter-chunk')
    const nginxRow = optionalRow(rows, 'nginx', 'inter-chunk')
    const expected = direct.stats.complete === plan.streams && direct.stats.perStream.size === 1 ? [...direct.stats.perStream][0]! : NaN
    // Every event of every stream the simulator sent, as direct received them.
    const gatewayLost = plan.streams * expected - gw.stats.events
    return {
      parameters: { ...plan },
      rows,
      checks: [
        check('gateway streams complete', gw.stats.complete, '>=', plan.streams, 'streams'),
        check('gateway events lost vs direct', gatewayLost, '<=', 0, 'events'),
        check('gateway added inter-chunk p99', gwRow.added!.p99, '<=', 1, 'ms'),
        ...(gw.held !== null ? [check('gateway memory per open stream (RSS after GC)', gw.held.rssKiB, '<=', 30, 'KiB')] : []),
        ...(nginxRow !== null ? [check('gateway added inter-chunk p99 minus nginx added', gwRow.added!.p99 - nginxRow.added!.p99, '<=', 1, 'ms')] : []),
      ],
      notes: [
        `direct: ${direct.stats.complete}/${plan.streams} streams complete, ${[...direct.stats.perStream].join('/')} events each`,
        ...[...results.entries()].filter(([, r]) => r.stats.failed > 0).map(([name, r]) => `${name}: failed streams: ${[...r.stats.failures].map(([why, n]) => `${n} x ${why}`).join(', ')}`),
        ...(gw.chunksPerCoreSecond !== null ? [`gateway: ${Math.round(gw.chunksPerCoreSecond)} chunks per CPU-second (chunks/s per core, from the CPU it used while every stream ran at ${plan.streams} x ${1000 / plan.interTokenMs}/s)`] : []),
        ...(gw.rssMiB !== null ? [`gateway RSS with ${plan.streams} streams open, no GC forced: ${Math.round(gw.rssMiB)} MiB (${gw.perStreamKiB!.toFixed(1)} KiB per stream over its RSS before; garbage included)`] : []),
        ...(gw.held !== null
          ? [
              `gateway memory held per open stream, after a memory-reducing GC, over the ${gw.held.open} streams open then: RSS ${gw.held.rssKiB.toFixed(1)} KiB, JS heap ${gw.held.heapKiB.toFixed(1)} KiB, array buffers ${gw.held.arrayBuffersKiB.toFixed(1)} KiB (RSS ${mib(gw.held.before.rss)} -> ${mib(gw.held.full.rss)} MiB; the GC with every stream open took ${gw.held.full.gcMs.toFixed(0)} ms, ${gw.stats.gapsSpanningProbe} gaps spanning it left out)`,
            ]
          : []),
        ...(nginx === null ? [NGINX_MISSING_NOTE] : []),
      ],
    }
  },
}
