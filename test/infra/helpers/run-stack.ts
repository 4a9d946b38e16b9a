/**
 * Runs the Pulumi program for one stack in its own child process (Pulumi's runtime state is
 * process-global) and returns what it declared. Runs are cached per argument list, and at most
 * two run at once (the machine has two cores).
 */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { REPO_ROOT } from '../../../infra/tools/stack-files.ts'
import type { DeclaredResource, ProgramRun } from '../../../infra/tools/mock-program.ts'

const SCRIPT = join(REPO_ROOT, 'infra', 'tools', 'mock-program.ts')
const cache = new Map<string, Promise<ProgramRun>>()
let running = 0
const waiting: (() => void)[] = []

async function slot<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 2) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try { return await fn() } finally { running--; waiting.shift()?.() }
}

export function runStack(stack: string, ...args: string[]): Promise<ProgramRun> {
  const key = [stack, ...args].join(' ')
  let run = cache.get(key)
  if (!run) {
    run = slot(() => new Promise<ProgramRun>((resolve, reject) => {
      execFile(process.execPath, [SCRIPT, stack, ...args], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 240_000 }, (err, stdout, stderr) => {
        if (err) return reject(new Error(`${key}: ${err.message}\n${stderr}`))
        try { resolve(JSON.parse(stdout) as ProgramRun) } catch (e) { reject(new Error(`${key}: bad output ${String(e)}\n${stderr}`)) }
      })
    }))
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
