/**
 * Active health checks: every intervalMs (jittered, so a fleet of gateways does not probe in step)
 * probe each member; `unhealthyThreshold` failures in a row take it out of rotation,
 * `healthyThreshold` successes in a row bring it back (and end an outlier ejection early). The probe
 * itself is the caller's (an undici GET of health.activePath); a probe that throws, answers false or
 * outlives timeoutMs has failed.
 */
import type { HealthConfig } from './config.ts'
import type { Member } from './member.ts'
import type { Random } from './rng.ts'
import { PeriodicTask } from './periodic-task.ts'

export type Probe<D> = (member: Member<D>, signal: AbortSignal) => Promise<boolean>

export interface HealthCheckerOptions<D> extends Pick<HealthConfig, 'intervalMs' | 'timeoutMs' | 'healthyThreshold' | 'unhealthyThreshold'> {
  /** The members to check, read every round so DNS changes are followed. */
  readonly members: () => readonly Member<D>[]
  readonly probe: Probe<D>
  /** Interval spread, as a fraction: 0.1 = intervalMs +-10%. */
  readonly jitter?: number
  readonly random?: Random
  readonly now?: () => number
  /** A member's health verdict changed. */
  readonly onChange?: (member: Member<D>, healthy: boolean) => void
}

interface Streak {
  successes: number
  failures: number
}

export class ActiveHealthChecker<D> {
  private readonly opts: HealthCheckerOptions<D>
  private readonly random: Random
  private readonly now: () => number
  private readonly streaks = new WeakMap<Member<D>, Streak>()
  private readonly task: PeriodicTask
  private abort: AbortController = new AbortController()

  constructor(opts: HealthCheckerOptions<D>) {
    if (!(opts.intervalMs > 0)) throw new RangeError('intervalMs must be positive to run active health checks')
    this.opts = opts
    this.random = opts.random ?? Math.random
    this.now = opts.now ?? (() => performance.now())
    const jitter = opts.jitter ?? 0.1
    this.task = new PeriodicTask(() => this.checkAll(), () => opts.intervalMs * (1 + jitter * (2 * this.random() - 1)))
  }

  /** Probes right away, then every interval. */
  start(): void {
    if (this.task.running) return
    this.abort = new AbortController()
    void this.task.start()
  }

  /** Stops the timer and aborts probes in flight; their results are ignored. */
  stop(): void {
    this.task.stop()
    this.abort.abort()
  }

  /** One round over every member, settled when all probes have. Shared with a round already running. */
  checkNow(): Promise<void> {
    return this.task.runNow()
  }

  private async checkAll(): Promise<void> {
    const members = this.opts.members()
    await Promise.all(members.map((m) => this.checkOne(m)))
  }

  private async checkOne(member: Member<D>): Promise<void> {
    const abort = this.abort
    const ok = await this.probeWithTimeout(member, abort.signal)
    if (abort.signal.aborted || member.draining) return
    this.record(member, ok)
  }

  private probeWithTimeout(member: Member<D>, stopSignal: AbortSignal): Promise<boolean> {
    const signal = AbortSignal.any([stopSignal, AbortSignal.timeout(this.opts.timeoutMs)])
    return new Promise<boolean>((resolve) => {
      const onAbort = (): void => resolve(false)
      signal.addEventListener('abort', onAbort, { once: true })
      let probing: Promise<boolean>
      try {
        probing = this.opts.probe(member, signal)
      } catch {
        probing = Promise.resolve(false)
      }
      probing.then(
        (healthy) => resolve(healthy === true && !signal.aborted),
        () => resolve(false),
      ).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  private record(member: Member<D>, ok: boolean): void {
    let streak = this.streaks.get(member)
    if (streak === undefined) {
      streak = { successes: 0, failures: 0 }
      this.streaks.set(member, streak)
    }
    if (ok) {
      streak.successes++
      streak.failures = 0
      if (!member.healthy && streak.successes >= this.opts.healthyThreshold) this.set(member, true)
      else if (member.healthy) member.breaker.onActiveHealthy(this.now())
    } else {
      streak.failures++
      streak.successes = 0
      if (member.healthy && streak.failures >= this.opts.unhealthyThreshold) this.set(member, false)
    }
  }

  private set(member: Member<D>, healthy: boolean): void {
    member.setHealthy(healthy, this.now())
    this.opts.onChange?.(member, healthy)
  }
}
