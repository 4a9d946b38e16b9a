/**
 * Child processes the harness starts: pinned to cores with `taskset`, their output kept for error
 * messages, and stopped by PID, on success, failure and Ctrl-C alike.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

export interface StartOptions {
  /** Shown in logs and errors. */
  name: string
  command: string
  args: string[]
  /** CPU list for `taskset -c` (e.g. "1" or "0,1"); null leaves the process unpinned. */
  cpus: string | null
  env?: NodeJS.ProcessEnv
  /** Called for each line the process writes to stdout or stderr. */
  onLine?: (line: string) => void
}

const KEPT_LINES = 40

export class ManagedProcess {
  readonly name: string
  readonly pid: number
  readonly cpus: string | null
  readonly child: ChildProcess
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>
  exitStatus: number | string | null = null
  #recentLines: string[] = []
  #lineListeners = new Set<(line: string) => void>()

  constructor(options: StartOptions) {
    this.name = options.name
    this.cpus = options.cpus
    // taskset execs the command, so the PID we hold is the process itself, not a wrapper.
    const [command, args] = options.cpus === null ? [options.command, options.args] : ['taskset', ['-c', options.cpus, options.command, ...options.args]]
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env })
    if (this.child.pid === undefined) throw new Error(`could not start ${options.name} (${command})`)
    this.pid = this.child.pid
    if (options.onLine) this.#lineListeners.add(options.onLine)
    for (const stream of [this.child.stdout, this.child.stderr]) {
      if (!stream) continue
      createInterface({ input: stream }).on('line', (line) => this.#onLine(line))
    }
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        const status = code ?? signal ?? 'unknown'
        // 'exit' can come before the last output lines are read; 'close' waits for the pipes, unless
        // a grandchild still holds them, hence the bound.
        const done = (): void => {
          if (this.exitStatus !== null) return
          this.exitStatus = status
          resolve(status)
        }
        this.child.once('close', done)
        setTimeout(done, 200).unref()
      })
      this.child.once('error', (error) => {
        this.exitStatus = error.message
        resolve(error.message)
      })
    })
  }

  get running(): boolean {
    return this.exitStatus === null
  }

  /** The last lines the process printed, for error messages. */
  recentOutput(): string {
    return this.#recentLines.join('\n')
  }

  addLineListener(listener: (line: string) => void): () => void {
    this.#lineListeners.add(listener)
    return () => this.#lineListeners.delete(listener)
  }

  /** Resolves with the first line that `match` accepts; rejects if the process exits or time runs out. */
  waitForLine<T>(match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`${this.name} did not become ready within ${timeoutMs} ms\n${this.recentOutput()}`)), timeoutMs)
      const remove = this.addLineListener((line) => {
        const value = match(line)
        if (value !== undefined) finish(null, value)
      })
      void this.exited.then((status) => finish(new Error(`${this.name} exited (${status}) before becoming ready\n${this.recentOutput()}`)))
      let settled = false
      function finish(error: Error | null, value?: T): void {
        if (settled) return
        settled = true
        clearTimeout(timer)
        remove()
        if (error) reject(error)
        else resolve(value as T)
      }
    })
  }

  #onLine(line: string): void {
    this.#recentLines.push(line)
    if (this.#recentLines.length > KEPT_LINES) this.#recentLines.shift()
    for (const listener of this.#lineListeners) listener(line)
  }
}

/** The processes of one scope (the whole run, or one scenario); stopping the scope stops them all. */
export class ProcessSet {
  #processes = new Set<ManagedProcess>()

  start(options: StartOptions): ManagedProcess {
    const managed = new ManagedProcess(options)
    this.#processes.add(managed)
    void managed.exited.then(() => this.#processes.delete(managed))
    return managed
  }

  /** SIGTERM, then SIGKILL if the process is still alive after `graceMs`. */
  async stop(managed: ManagedProcess, graceMs = 3_000): Promise<void> {
    if (!managed.running) return
    signal(managed.pid, 'SIGTERM')
    const timer = setTimeout(() => signal(managed.pid, 'SIGKILL'), graceMs)
    await managed.exited
    clearTimeout(timer)
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#processes].map((p) => this.stop(p)))
  }

  /** PIDs of the processes still running. */
  pids(): number[] {
    return [...this.#processes].filter((p) => p.running).map((p) => p.pid)
  }

  /** Last resort from a synchronous `exit` handler: no waiting, no grace. */
  killAllNow(): void {
    for (const managed of this.#processes) if (managed.running) signal(managed.pid, 'SIGKILL')
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error
  }
}

/** Pins every thread of the current process (the load generator), and threads it starts later, to `cpus`. */
export async function pinSelf(cpus: string): Promise<void> {
  await execFileAsync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)])
}
