/**
 * A self-rescheduling task: runs now, then again a delay after each run settles (so runs never
 * overlap and a slow run pushes the next one back), until stopped. Used by the active health
 * checker, DNS discovery and the pod metrics scraper. The timer is unref'd: it never keeps the
 * process alive.
 */
export class PeriodicTask {
  readonly #run: () => Promise<void>
  readonly #delayMs: () => number
  #timer: NodeJS.Timeout | null
  #running: boolean
  /** Counts start() calls: a loop of an earlier start (stopped, then started again while its run was in flight) ends. */
  #generation: number
  #inFlight: Promise<void> | null

  /** `delayMs` is asked after every run (e.g. to add jitter). */
  constructor(run: () => Promise<void>, delayMs: () => number) {
    this.#run = run
    this.#delayMs = delayMs
    this.#timer = null
    this.#running = false
    this.#generation = 0
    this.#inFlight = null
  }

  get running(): boolean {
    return this.#running
  }

  /** Runs now and then periodically (idempotent); resolves once the first run has settled. */
  start(): Promise<void> {
    if (this.#running) return this.#inFlight ?? Promise.resolve()
    this.#running = true
    return this.#loop(++this.#generation)
  }

  /** No run after this one; a run in flight finishes. */
  stop(): void {
    this.#running = false
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }

  /** One run now, outside the schedule; concurrent calls share the run in flight. */
  runNow(): Promise<void> {
    this.#inFlight ??= this.#run().finally(() => {
      this.#inFlight = null
    })
    return this.#inFlight
  }

  /** Resolves when the run in flight, if any, has settled. */
  async settled(): Promise<void> {
    await this.#inFlight
  }

  async #loop(generation: number): Promise<void> {
    await this.runNow()
    if (!this.#running || generation !== this.#generation) return
    this.#timer = setTimeout(() => void this.#loop(generation), Math.max(1, this.#delayMs()))
    this.#timer.unref()
  }
}
