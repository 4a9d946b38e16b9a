/**
 * CPU and heap profiles in pprof format (@datadog/pprof, loaded only when a profile is asked
 * for), on demand from the admin listener, and pushed continuously to a Pyroscope-compatible
 * collector when `telemetry.profiling.pushUrl` is set. V8's CPU profiler is one per process, so
 * only one CPU profile runs at a time.
 */
import { GatewayError } from '../errors.ts'
import type { Logger } from './logger.ts'
import type { TelemetryConfig } from './config.ts'

type Pprof = typeof import('@datadog/pprof')
/** What a CPU profile is (the package @datadog/pprof builds and encodes them with). */
type Profile = Awaited<ReturnType<Pprof['time']['profile']>>

let pprofModule: Promise<Pprof> | null = null
function pprof(): Promise<Pprof> {
  pprofModule ??= import('@datadog/pprof')
  return pprofModule
}

/** Sampling interval of the CPU profiler (µs): 100 Hz, Go's and Pyroscope's default. */
const CPU_INTERVAL_MICROS = 10_000
/** The heap sampler records one allocation per this many bytes on average (V8's default). */
const HEAP_INTERVAL_BYTES = 512 * 1024
const HEAP_STACK_DEPTH = 64

let cpuBusy = false
let heapStarted = false

/** A CPU profile of the next `seconds`, pprof-encoded (gzipped protobuf, what `go tool pprof` reads). */
export async function cpuProfile(seconds: number): Promise<Buffer> {
  if (cpuBusy) throw new GatewayError('GW_ERR_PROFILE_BUSY')
  cpuBusy = true
  try {
    const p = await pprof()
    const profile = await p.time.profile({ durationMillis: seconds * 1000, intervalMicros: CPU_INTERVAL_MICROS })
    return Buffer.from(await p.encode(profile))
  } finally {
    cpuBusy = false
  }
}

/**
 * The sampled heap: live allocations made since sampling started. Sampling starts on the first
 * call (and then stays on; its cost is negligible at this interval), so that first call waits
 * `seconds` to have something to show.
 */
export async function heapProfile(seconds: number): Promise<Buffer> {
  const p = await pprof()
  if (!heapStarted) {
    p.heap.start(HEAP_INTERVAL_BYTES, HEAP_STACK_DEPTH)
    heapStarted = true
  }
  if (seconds > 0) await new Promise((r) => setTimeout(r, seconds * 1000))
  return Buffer.from(await p.encode(p.heap.profile()))
}

export interface ProfilePusher {
  stop(): Promise<void>
}

/**
 * Continuous profiling: the CPU profiler runs all the time and every `intervalMs` its profile is
 * cut (the profiler restarts at once) and POSTed to the collector's `/ingest` as multipart
 * `profile` (pprof), Pyroscope's push API. A collector that is down costs one failed POST per
 * interval, logged at most once a minute.
 */
export async function startProfilePush(config: TelemetryConfig['profiling'], env: NodeJS.ProcessEnv, logger: Logger): Promise<ProfilePusher | null> {
  if (config.pushUrl === undefined) return null
  if (cpuBusy) throw new Error('a CPU profile is already running')
  const p = await pprof()
  const token = config.tokenEnv !== undefined ? env[config.tokenEnv] : undefined
  if (config.tokenEnv !== undefined && (token === undefined || token === '')) throw new Error(`telemetry.profiling.tokenEnv: ${config.tokenEnv} is not set`)
  const labels = Object.entries(config.labels).map(([k, v]) => `${k}=${v}`).join(',')
  const name = `${config.appName}.cpu{${labels}}`
  const ingest = new URL('ingest', config.pushUrl.endsWith('/') ? config.pushUrl : config.pushUrl + '/')
  cpuBusy = true
  p.time.start({ intervalMicros: CPU_INTERVAL_MICROS })
  let from = Date.now()
  let lastErrorLog = 0
  let sending: Promise<void> = Promise.resolve()
  const push = async (profile: Profile, fromMs: number, untilMs: number): Promise<void> => {
    const body = new FormData()
    body.set('profile', new Blob([await p.encode(profile)]), 'profile.pprof')
    const url = new URL(ingest)
    url.searchParams.set('name', name)
    url.searchParams.set('from', String(Math.floor(fromMs / 1000)))
    url.searchParams.set('until', String(Math.ceil(untilMs / 1000)))
    url.searchParams.set('format', 'pprof')
    url.searchParams.set('sampleRate', String(1_000_000 / CPU_INTERVAL_MICROS))
    url.searchParams.set('spyName', 'nodespy')
    try {
      const res = await fetch(url, { method: 'POST', body, headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10_000) })
      await res.arrayBuffer()
      if (!res.ok) throw new Error(`collector answered ${res.status}`)
    } catch (err) {
      const now = Date.now()
      if (now - lastErrorLog >= 60_000) {
        lastErrorLog = now
        logger.warn({ err: (err as Error).message, url: ingest.origin }, 'profile push failed')
      }
    }
  }
  const timer = setInterval(() => {
    const until = Date.now()
    const profile = p.time.stop(true)
    const since = from
    from = until
    sending = sending.then(() => push(profile, since, until))
  }, config.intervalMs)
  timer.unref()
  logger.info({ url: ingest.origin, intervalMs: config.intervalMs, name }, 'continuous profiling: pushing CPU profiles')
  return {
    async stop() {
      clearInterval(timer)
      p.time.stop(false)
      cpuBusy = false
      await sending
    },
  }
}
