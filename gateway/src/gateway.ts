/**
 * The gateway's live state: the current runtime snapshot (swapped whole by reloads), readiness,
 * in-flight calls and shutdown. Hung on the fastify instance as `app.velox`.
 */
import type { ApiKeyConfig } from './auth/config.ts'
import { KeysFileWatcher } from './auth/keys-file.ts'
import type { ResponseCache } from './cache/index.ts'
import { Tenancy } from './limits/index.ts'
import type { UsageLedger } from './limits/usage.ts'
import type { GatewayConfig } from './config/schema.ts'
import type { CallContext } from './proxy/context.ts'
import type { ProxyCall } from './proxy/call.ts'
import { GatewayError } from './errors.ts'
import { compileForwardedHeaders, type ForwardedHeaders } from './protocols/forwarded-headers.ts'
import { RuntimeSnapshot } from './runtime/snapshot.ts'
import { AccessLog, FailureLimiter } from './telemetry/access-log.ts'
import type { GatewayMetrics } from './telemetry/metrics.ts'
import type { Logger } from './telemetry/logger.ts'
import { InFlight } from './proxy/in-flight.ts'

export interface ReloadResult {
  applied: boolean
  reason: string | null
}

/** Keys bound when the process starts listening; a reload logs that they need a restart. */
const RESTART_ONLY = ['host', 'port', 'workers', 'bodyLimit', 'keepAliveTimeoutMs', 'requestTimeoutMs', 'bodyMinBytesPerSecond', 'bodyMinRateAfterMs', 'shutdownDelayMs', 'shutdownTimeoutMs', 'forwardHeaders', 'cors'] as const

export class Gateway {
  snapshot: RuntimeSnapshot<CallContext>
  readonly metrics: GatewayMetrics
  readonly logger: Logger
  readonly inFlight: InFlight<ProxyCall>
  /** Client headers passed upstream (`server.forwardHeaders`, compiled at boot). */
  readonly forwardedHeaders: ForwardedHeaders
  /** HTTP requests received and not yet answered (uploads, cache replays and proxied calls alike). */
  openRequests: number
  /** The response cache, or null when `cache.enabled` is false. Lives across reloads. */
  readonly cache: ResponseCache | null
  /** Resolves once pools are warmed (whether or not any upstream answered); null until start(). */
  warmed: Promise<void> | null
  ready: boolean
  shuttingDown: boolean
  private sweeper: NodeJS.Timeout | null

  /** The access log (`telemetry.accessLog`), or null when off. Set at boot; reloads keep it. */
  readonly accessLog: AccessLog | null
  /** Failure log lines kept per cause and minute (access log and upstream failures alike). */
  readonly failureLogs: FailureLimiter

  /** Incremented by every applied reload; 1 for the boot config. */
  generation: number
  private readonly env: NodeJS.ProcessEnv
  private reloading: Promise<unknown>
  /** Limit counters and usage: kept across reloads. */
  readonly tenancy: Tenancy
  private fileKeys: readonly ApiKeyConfig[]
  private readonly keysFile: KeysFileWatcher | null

  constructor(config: GatewayConfig, logger: Logger, metrics: GatewayMetrics, env: NodeJS.ProcessEnv, cache: ResponseCache | null = null) {
    this.metrics = metrics
    this.forwardedHeaders = compileForwardedHeaders(config.server.forwardHeaders)
    this.cache = cache
    this.logger = logger
    this.env = env
    this.generation = 1
    this.reloading = Promise.resolve()
    this.inFlight = new InFlight()
    this.openRequests = 0
    this.ready = false
    this.shuttingDown = false
    this.failureLogs = new FailureLimiter(config.telemetry.accessLog.failuresPerMinute)
    this.accessLog = config.telemetry.accessLog.enabled ? new AccessLog(config.telemetry.accessLog, logger, this.failureLogs) : null
    this.warmed = null
    this.sweeper = null
    this.tenancy = new Tenancy(config, metrics.registry, logger)
    this.fileKeys = []
    this.keysFile =
      config.auth.keysFile === undefined
        ? null
        : new KeysFileWatcher(config.auth.keysFile, {
            loaded: (keys) => {
              this.fileKeys = keys
              this.snapshot.auth.setFileKeys(keys)
              this.labelUsage()
              this.logger.info({ file: config.auth.keysFile, keys: keys.length }, 'API keys file loaded')
            },
            refused: (reason) => this.logger.error({ reason }, 'API keys file refused; the keys in force stay'),
          })
    this.snapshot = this.buildSnapshot(config)
    metrics.setMemberSource(() => this.snapshot.router.members())
    metrics.setConfiguredModels(() => this.snapshot.modelIds)
    metrics.setKnownModels(() => this.snapshot.modelIds)
  }

  /** Starts warming the pools and the in-flight sweeper; returns `warmed`. Call once. */
  start(): Promise<void> {
    if (this.warmed !== null) return this.warmed
    this.warmed = this.warm()
    // Total deadlines are enforced by one coarse sweep instead of a timer per request.
    this.sweeper = setInterval(() => this.sweep(), 100)
    this.sweeper.unref()
    return this.warmed
  }

  /** Usage metrics and the usage ledger of this gateway (lives across reloads). */
  get usage(): UsageLedger {
    return this.tenancy.usage
  }

  private buildSnapshot(config: GatewayConfig): RuntimeSnapshot<CallContext> {
    return new RuntimeSnapshot(config, { env: this.env, logger: this.logger, buildContext: (s) => this.buildContext(s), tenancy: this.tenancy, fileKeys: this.fileKeys })
  }

  /** Usage labels come from the running config only: its models and its key names. */
  private labelUsage(): void {
    this.tenancy.usage.setLabels(this.snapshot.modelIds, this.snapshot.auth.principals().map((p) => p.keyName))
  }

  private buildContext(snapshot: RuntimeSnapshot<CallContext>): CallContext {
    return {
      metrics: this.metrics,
      router: snapshot.router,
      serverTiming: snapshot.config.server.serverTiming,
      sseKeepAliveMs: snapshot.config.server.sseKeepAliveMs,
      inFlight: this.inFlight,
      track: (delta) => snapshot.track(delta),
      observeConcurrency: (member) => snapshot.sizer.observe(member),
      shuttingDown: () => this.shuttingDown,
      accessLog: this.accessLog,
      onUpstreamFailure: (call, member, failure) => {
        this.metrics.countUpstreamError(member.upstreamName, failure.code)
        // A dead upstream fails every request: keep a sample of lines per cause, count the rest.
        const suppressed = this.failureLogs.allow(`upstream:${member.upstreamName}:${failure.code}`, Date.now())
        if (suppressed < 0) return
        this.logger.warn(
          { requestId: call.request.requestId, upstream: member.upstreamName, member: member.name, code: failure.code, detail: failure.detail, attempt: call.attempts, model: call.model, ...(suppressed > 0 ? { suppressed } : {}) },
          'upstream failure',
        )
      },
    }
  }

  private async warm(): Promise<void> {
    this.tenancy.start()
    await this.keysFile?.start()
    const snapshot = this.snapshot
    this.metrics.configGeneration.set(this.generation)
    const started = performance.now()
    const answered = await snapshot.start()
    this.labelUsage()
    const ms = Math.round(performance.now() - started)
    const members = snapshot.router.members()
    const connections = members.reduce((n, m) => n + m.upstream.warmed, 0)
    this.ready = answered > 0
    if (this.ready) this.logger.info({ members: members.length, answered, connections, ms }, 'upstream pools warmed')
    else this.logger.error({ members: members.length, ms }, 'no upstream answered the warm-up; not ready')
  }

  /**
   * Applies a new config: builds and warms a new snapshot, then swaps it in atomically. Requests
   * already running finish on the old snapshot, whose pools close once they are done. A config
   * that fails to load or build is refused and the running one stays in force. Reloads are
   * serialized.
   */
  reload(load: () => GatewayConfig): Promise<ReloadResult> {
    const run = this.reloading.then(() => this.reloadNow(load))
    this.reloading = run.catch(() => undefined)
    return run
  }

  private async reloadNow(load: () => GatewayConfig): Promise<ReloadResult> {
    if (this.shuttingDown) return { applied: false, reason: 'shutting down' }
    let next: RuntimeSnapshot<CallContext>
    try {
      const config = load()
      const restartKeys = RESTART_ONLY.filter((k) => JSON.stringify(config.server[k]) !== JSON.stringify(this.snapshot.config.server[k])).map((k) => `server.${k}`)
      for (const section of ['cache', 'redis'] as const) {
        if (JSON.stringify(config[section]) !== JSON.stringify(this.snapshot.config[section])) restartKeys.push(section)
      }
      if (restartKeys.length > 0) this.logger.warn({ keys: restartKeys }, 'these keys take effect only after a restart')
      if (config.auth.keysFile !== this.snapshot.config.auth.keysFile || config.limits.backend !== this.snapshot.config.limits.backend) restartKeys.push('auth.keysFile / limits.backend')
      next = this.buildSnapshot(config)
    } catch (err) {
      this.metrics.configReloads.inc({ result: 'rejected' })
      this.logger.error({ err: (err as Error).message }, 'config reload refused; the running config stays in force')
      return { applied: false, reason: (err as Error).message }
    }
    const answered = await next.start()
    const old = this.snapshot
    this.snapshot = next
    this.labelUsage()
    this.generation++
    this.metrics.setConfiguredModels(() => next.modelIds)
    this.metrics.configGeneration.set(this.generation)
    this.metrics.configReloads.inc({ result: 'applied' })
    this.logger.info({ generation: this.generation, members: next.router.members().length, answered }, 'config reloaded')
    if (answered > 0) this.ready = true
    // In-flight calls hold the old snapshot's members and may still fail over on them: its pools
    // close once the last of those calls is done.
    void old.closeWhenIdle().catch((err: unknown) => this.logger.warn({ err }, 'closing the previous snapshot failed'))
    return { applied: true, reason: null }
  }

  /**
   * One coarse sweep instead of timers per request: total deadlines, the first-byte deadline
   * of streams whose headers came but whose first event has not (a stalled start fails over), and
   * the wait of attempts queued for a connection (pool.queueTimeoutMs).
   */
  private sweep(): void {
    if (this.inFlight.size === 0) return
    const now = performance.now()
    this.inFlight.forEach((call) => {
      if (call.deadlineAt !== 0 && now >= call.deadlineAt) call.expire()
      else if (!call.committed) {
        call.checkFirstByte(now)
        if (!call.finished) call.checkQueue(now)
      }
    })
  }

  /** /readyz: warmed, not shutting down, and some member can take a request now. */
  isReady(): boolean {
    return this.ready && !this.shuttingDown && this.snapshot.anyAvailable()
  }

  /**
   * The first step of a shutdown: /readyz fails at once, responses ask clients to close their
   * connections, and everything else keeps serving (the drain comes later).
   */
  beginShutdown(): void {
    this.shuttingDown = true
    this.ready = false
  }

  /**
   * Stops taking new work; resolves true when every open request (a body still uploading, a
   * stream still running) is done, or false at the deadline.
   */
  async drain(deadlineMs: number): Promise<boolean> {
    this.shuttingDown = true
    this.ready = false
    const until = performance.now() + deadlineMs
    while (this.openRequests > 0 && performance.now() < until) await new Promise((r) => setTimeout(r, 25))
    return this.openRequests === 0
  }

  /** At the drain deadline: end what still runs visibly (streams get an error event), not silently. */
  abortInFlight(): void {
    this.inFlight.forEach((call) => call.abort(new GatewayError('GW_ERR_SHUTTING_DOWN')))
  }

  async close(): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    this.sweeper = null
    this.keysFile?.close()
    await this.snapshot.close()
    await this.tenancy.close()
    await this.cache?.close()
  }
}

