/**
 * Runs the Pulumi program for one stack and returns what it declared. The runs of a process go to
 * one program server (infra/tools/mock-program.ts --serve), a child process that runs them one
 * after another, each with Pulumi's state and the program's modules new: the SDKs load once for
 * all of them (a run costs about 0.35 s of CPU there, 1.2 s in a process of its own). Runs are
 * shared: within a process per argument list, and between the test files of one test run through
 * a directory named after the test runner's pid (its files and lanes are its children), so the
 * program, golden and other infra tests pay for each stack once.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { REPO_ROOT } from '../../../infra/tools/stack-files.ts'
import type { DeclaredResource, ProgramRun } from '../../../infra/tools/mock-program.ts'
import { eventually } from '../../helpers/eventually.ts'

const SCRIPT = join(REPO_ROOT, 'infra', 'tools', 'mock-program.ts')
const SHARED_ROOT = join(tmpdir(), 'velox-program-runs')
const SHARED = join(SHARED_ROOT, String(process.ppid))
const RUN_TIMEOUT_MS = 240_000
const cache = new Map<string, Promise<ProgramRun>>()

interface Server {
  readonly child: ChildProcess
  readonly answers: Map<number, (run: ProgramRun) => void>
  /** The end of its stderr, for the error when it dies. */
  stderr: string
  exited: boolean
}

let server: Server | null = null
let nextId = 1
/** One request at a time: the server runs them in order anyway. */
let chain: Promise<unknown> = Promise.resolve()

function startServer(): Server {
  const child = spawn(process.execPath, [SCRIPT, '--serve'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] })
  const s: Server = { child, answers: new Map(), stderr: '', exited: false }
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{"id":')) return
    const { id, run } = JSON.parse(line) as { id: number; run: ProgramRun }
    s.answers.get(id)?.(run)
  })
  child.stderr!.on('data', (c: Buffer) => (s.stderr = (s.stderr + c.toString()).slice(-4000)))
  child.on('close', () => (s.exited = true))
  return s
}

/** Holds this process open while the server works, and lets it exit while the server waits. */
function hold(s: Server, held: boolean): void {
  for (const h of [s.child, s.child.stdin, s.child.stdout, s.child.stderr] as ({ ref(): void; unref(): void } | null)[]) {
    if (held) h?.ref()
    else h?.unref()
  }
}

function askServer(key: string, args: readonly string[]): Promise<ProgramRun> {
  if (server === null || server.exited) server = startServer()
  const s = server
  const id = nextId++
  hold(s, true)
  return new Promise<ProgramRun>((resolve, reject) => {
    const timer = setTimeout(() => {
      s.child.kill('SIGKILL')
      reject(new Error(`${key}: no answer within ${RUN_TIMEOUT_MS / 1000} s\n${s.stderr}`))
    }, RUN_TIMEOUT_MS)
    const onExit = (code: number | null, signal: string | null): void => {
      clearTimeout(timer)
      reject(new Error(`${key}: the program server exited (${signal ?? code}) before answering\n${s.stderr}`))
    }
    s.child.once('close', onExit)
    s.answers.set(id, (run) => {
      clearTimeout(timer)
      s.child.off('close', onExit)
      s.answers.delete(id)
      // A failed run ends its server (mock-program.ts): the next run starts another.
      if (run.error !== null && server === s) server = null
      resolve(run)
    })
    s.child.stdin!.write(JSON.stringify({ id, args }) + '\n')
  }).finally(() => hold(s, false))
}

function execProgram(key: string, stack: string, args: string[]): Promise<ProgramRun> {
  const run = chain.then(() => askServer(key, [stack, ...args]))
  chain = run.catch(() => {})
  return run
}

function exists(path: string): boolean {
  try { statSync(path); return true } catch { return false }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true } catch (err) { return (err as NodeJS.ErrnoException).code === 'EPERM' }
}

/** Drops the shared runs of test runners that have exited. */
function sweep(): void {
  mkdirSync(SHARED, { recursive: true })
  for (const dir of readdirSync(SHARED_ROOT)) {
    if (/^\d+$/.test(dir) && !alive(Number(dir))) rmSync(join(SHARED_ROOT, dir), { recursive: true, force: true })
  }
}
sweep()

/**
 * One run per argument list for the whole test run: the first file to ask claims it (an
 * exclusive lock file) and writes the result; the others wait for the result file. A claim whose
 * owner died is taken over.
 */
async function sharedRun(key: string, stack: string, args: string[]): Promise<ProgramRun> {
  const id = createHash('sha256').update(key).digest('hex').slice(0, 24)
  const result = join(SHARED, `${id}.json`)
  const lock = join(SHARED, `${id}.lock`)
  for (;;) {
    try {
      return JSON.parse(readFileSync(result, 'utf8')) as ProgramRun
    } catch { /* not there yet */ }
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' })
    } catch {
      // Someone else runs it: wait for its result, its release (it failed: try again here) or its death.
      let owner = 0
      try { owner = Number(readFileSync(lock, 'utf8').trim() || '0') } catch { continue }
      await eventually(() => exists(result) || !exists(lock) || (owner !== 0 && !alive(owner)), { timeoutMs: 300_000, intervalMs: 50, what: `program run ${key} by process ${owner}` })
      if (!exists(result) && owner !== 0 && !alive(owner)) rmSync(lock, { force: true })
      continue
    }
    try {
      const run = await execProgram(key, stack, args)
      writeFileSync(`${result}.${process.pid}`, JSON.stringify(run))
      renameSync(`${result}.${process.pid}`, result)
      return run
    } finally {
      rmSync(lock, { force: true })
    }
  }
}

export function runStack(stack: string, ...args: string[]): Promise<ProgramRun> {
  const key = [stack, ...args].join(' ')
  let run = cache.get(key)
  if (!run) {
    run = sharedRun(key, stack, args)
    cache.set(key, run)
  }
  return run
}

export function ofType(run: ProgramRun, type: string): DeclaredResource[] {
  return run.resources.filter((r) => r.type === type)
}

export function one(run: ProgramRun, type: string, nameSuffix = ''): DeclaredResource {
  const found = ofType(run, type).filter((r) => r.name.endsWith(nameSuffix))
  if (found.length !== 1) throw new Error(`expected one ${type} named *${nameSuffix}, found ${found.length}`)
  return found[0]!
}

export function countByType(run: ProgramRun): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of run.resources) out[r.type] = (out[r.type] ?? 0) + 1
  return out
}
