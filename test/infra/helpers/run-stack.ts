/**
 * Runs the Pulumi program for one stack in its own child process (Pulumi's runtime state is
 * process-global) and returns what it declared. Runs are shared: within a process per argument
 * list, and between the test files of one `node --test` run through a directory named after the
 * test runner's pid (each file is a child of it), so the program, golden and other infra tests
 * pay for each stack once. At most two runs are in flight per process (the machine has two cores).
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { REPO_ROOT } from '../../../infra/tools/stack-files.ts'
import type { DeclaredResource, ProgramRun } from '../../../infra/tools/mock-program.ts'
import { eventually } from '../../helpers/eventually.ts'

const SCRIPT = join(REPO_ROOT, 'infra', 'tools', 'mock-program.ts')
const SHARED_ROOT = join(tmpdir(), 'velox-program-runs')
const SHARED = join(SHARED_ROOT, String(process.ppid))
const cache = new Map<string, Promise<ProgramRun>>()
let running = 0
const waiting: (() => void)[] = []

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try { return await fn() } finally { running--; waiting.shift()?.() }
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

function execProgram(key: string, stack: string, args: string[]): Promise<ProgramRun> {
  return slot(() => new Promise<ProgramRun>((resolve, reject) => {
    execFile(process.execPath, [SCRIPT, stack, ...args], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${key}: ${err.message}\n${stderr}`))
      try { resolve(JSON.parse(stdout) as ProgramRun) } catch (e) { reject(new Error(`${key}: bad output ${String(e)}\n${stderr}`)) }
    })
  }))
}

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
