/**
 * Processes the chaos suite starts: the gateway (`gateway/src/main.ts` with a config file),
 * simulators and redis-server. Each is tracked by PID and stopped by PID, on success, failure and
 * Ctrl-C alike; RSS and open file descriptors are read from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../../src/cluster/free-port.ts'
import { Inspector } from './inspect.ts'

const ROOT = new URL('../../../', import.meta.url).pathname
export const GATEWAY_MAIN = join(ROOT, 'gateway/src/main.ts')
export const SIMULATOR_MAIN = join(ROOT, 'gateway/src/simulator/main.ts')

const running = new Set<Proc>()

export class Proc {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  readonly exited: Promise<number | string>
  exitStatus: number | string | null
  /** Set when the suite itself stopped the process (an exit then is no crash). */
  stopping: boolean
  /** Runs before the stop signal (e.g. closing an inspector session, so exit never waits on it). */
  beforeStop: (() => void) | null
  private output: string

  constructor(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.name = name
    this.child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
    if (this.child.pid === undefined) throw new Error(`could not start ${name}`)
    this.pid = this.child.pid
    this.exitStatus = null
    this.stopping = false
    this.beforeStop = null
    this.output = ''
    const keep = (c: Buffer): void => {
      this.output += c.toString()
      if (this.output.length > 200_000) this.output = this.output.slice(-100_000)
    }
    this.child.stdout!.on('data', keep)
    this.child.stderr!.on('data', keep)
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      running.delete(this)
      this.exitStatus = (code as number | null) ?? (signal as string)
      return this.exitStatus
    })
    running.add(this)
  }

  logs(): string {
    return this.output
  }

  /** Resolves with the first match of `re` in the output, or rejects after `ms` or on exit. */
  async waitFor(re: RegExp, ms = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      const m = re.exec(this.output)
      if (m !== null) return m
      if (this.exitStatus !== null) throw new Error(`${this.name} exited (${this.exitStatus}):\n${this.output.slice(-4_000)}`)
      await new Promise((r) => setTimeout(r, 20))
    }
    throw new Error(`${this.name}: no ${re} within ${ms} ms:\n${this.output.slice(-4_000)}`)
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exitStatus === null) process.kill(this.pid, sig)
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    this.stopping = true
    if (this.exitStatus !== null) return
    this.beforeStop?.()
    this.signal('SIGTERM')
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** Resident set size in bytes, from /proc. */
  rss(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.pid}/status`, 'utf8'))
    return m === null ? 0 : Number(m[1]) * 1024
  }

  fds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length
  }
}

/** Stops every process still running (Ctrl-C, or a failed run). */
export function killAll(): void {
  for (const p of running) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

process.once('SIGINT', () => {
  killAll()
  process.exit(130)
})

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'velox-chaos-'))
}

export { freePort }

export interface SimulatorProc {
  proc: Proc
  url: string
  port: number
  setFaults(faults: Record<string, unknown>): Promise<void>
  clearFaults(): Promise<void>
}

export async function startSimulatorProc(name: string, args: string[] = [], port = 0): Promise<SimulatorProc> {
  const proc = new Proc(name, process.execPath, [SIMULATOR_MAIN, '--host', '127.0.0.1', '--port', String(port), ...args])
  const m = await proc.waitFor(/"url":"(http:\/\/127\.0\.0\.1:(\d+))"/, 60_000)
  const url = m[1]!
  const call = async (method: string, body?: unknown): Promise<void> => {
    const res = await fetch(`${url}/_sim/faults`, { method, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
    if (res.status >= 300) throw new Error(`${name}: ${method} /_sim/faults: ${res.status} ${await res.text()}`)
    await res.arrayBuffer()
  }
  return { proc, url, port: Number(m[2]), setFaults: (f) => call('POST', f), clearFaults: () => call('DELETE') }
}

export interface GatewayProc {
  proc: Proc
  url: string
  port: number
  configPath: string
  /** The V8 inspector of the gateway process, when it was started with `inspect`. */
  inspector: Inspector | null
}

export interface GatewayProcOptions {
  /** Start with `--inspect=127.0.0.1:0` and connect (post-GC heap figures, heap snapshots). */
  inspect?: boolean
  /** Extra Node.js flags for the gateway process (e.g. `--trace-gc` while investigating). */
  nodeArgs?: readonly string[]
}

/** Node.js flags for every gateway the suite starts, from `--gateway-node-args` (space-separated). */
export const gatewayNodeArgs: string[] = []

/** Starts main.ts on `yaml` (a config file written to a fresh directory) and waits for /readyz. */
export async function startGatewayProc(yaml: string, env: NodeJS.ProcessEnv = {}, opts: GatewayProcOptions = {}): Promise<GatewayProc> {
  const configPath = join(tempDir(), 'gateway.yaml')
  writeFileSync(configPath, yaml)
  const nodeArgs = [...gatewayNodeArgs, ...(opts.nodeArgs ?? []), ...(opts.inspect === true ? ['--inspect=127.0.0.1:0'] : [])]
  const proc = new Proc('gateway', process.execPath, [...nodeArgs, GATEWAY_MAIN, '--config', configPath], { ...process.env, ...env })
  const inspectorUrl = opts.inspect === true ? (await proc.waitFor(/Debugger listening on (ws:\/\/\S+)/, 90_000))[1]! : null
  // A loaded machine can take tens of seconds to start a process.
  const m = await proc.waitFor(/"port":(\d+)[^\n]*"msg":"velox gateway listening"/, 90_000)
  const port = Number(m[1])
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    const res = await fetch(`${url}/readyz`).catch(() => null)
    if (res !== null) await res.arrayBuffer()
    if (res?.status === 200) break
    if (Date.now() > deadline) throw new Error(`gateway never became ready:\n${proc.logs().slice(-4_000)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  const inspector = inspectorUrl === null ? null : await Inspector.connect(inspectorUrl)
  if (inspector !== null) proc.beforeStop = () => inspector.close()
  return { proc, url, port, configPath, inspector }
}

export async function startRedis(): Promise<{ proc: Proc; port: number; url: string }> {
  const port = await freePort()
  const proc = new Proc('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  await proc.waitFor(/Ready to accept connections/)
  return { proc, port, url: `redis://127.0.0.1:${port}` }
}

/** Restarts redis-server on the same port (after a kill). */
export async function restartRedis(port: number): Promise<Proc> {
  const proc = new Proc('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  await proc.waitFor(/Ready to accept connections/)
  return proc
}
