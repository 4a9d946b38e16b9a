/**
 * What `npm test` runs: the type check and the two halves of the suite side by side. Most gateway
 * test files wait (on sockets, child processes, timeouts under test) far more than they compute,
 * while the infra files compute (Pulumi program runs, schema checks) and are the longest: run one
 * after the other, the infra files would form the tail. Each half is one node:test run of its
 * files, longest first (test/run-part.ts; the infra files share their Pulumi program runs within
 * theirs, test/infra/helpers/run-stack.ts).
 *
 * The gateway half reports as it goes; the infra half's report is printed when both are done.
 * Exits non-zero when the type check or any test failed.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

interface Part {
  readonly name: string
  readonly args: readonly string[]
  /** Stream the output as it comes (else keep it until the end). */
  readonly live: boolean
}

const NODE = process.execPath
/** How node:test's spec reporter heads the list of failures at the end of a run. */
const FAILING = '✖ failing tests:'
/** At most this much of a part's failure list is repeated at the end. */
const MAX_REPEATED = 20_000
/** The repository root: the paths below are relative to it, wherever this is started from. */
const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** Each half runs its files longest first, from the durations of the previous run (test/run-part.ts). */
const PART = 'test/run-part.ts'
const PARTS: readonly Part[] = [
  // Build mode: with no input changed since the last clean check it ends at once (freshAfterInstall).
  { name: 'typecheck', args: ['node_modules/typescript/bin/tsc', '-b', 'tsconfig.json'], live: false },
  // Four files at once: their waits overlap, and two cores still keep up with what they compute.
  { name: 'test/gateway', args: [PART, 'test/gateway', '4'], live: true },
  // Two files at once, each with up to two program runs of its own in flight.
  { name: 'test/infra', args: [PART, 'test/infra', '2'], live: false },
]

interface Done {
  readonly part: Part
  readonly code: number
  readonly seconds: number
  readonly output: string
}

function run(part: Part): Promise<Done> {
  const started = performance.now()
  const env = { ...process.env, NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE ?? `${ROOT}node_modules/.cache/velox-compile` }
  // A live part's output is passed on as it comes and kept too, for the failures repeated at the end.
  const child = spawn(NODE, part.args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const chunks: Buffer[] = []
  const keep = (out: NodeJS.WriteStream) => (c: Buffer): void => {
    chunks.push(c)
    if (part.live) out.write(c)
  }
  child.stdout.on('data', keep(process.stdout))
  child.stderr.on('data', keep(process.stderr))
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      resolve({ part, code: code ?? (signal !== null ? 128 : 1), seconds: (performance.now() - started) / 1000, output: Buffer.concat(chunks).toString() })
    })
  })
}

/**
 * tsc rewrites its build info (tsconfig.json's tsBuildInfoFile) in place. A node_modules copied
 * with hard links (`cp -al`, to set up another checkout quickly) shares that file with every
 * copy, so type checks in several checkouts would read and write one file at once: this checkout
 * gets its own copy first.
 */
function ownBuildInfo(path: string): void {
  try {
    if (statSync(path).nlink <= 1) return
    copyFileSync(path, `${path}.${process.pid}`)
    renameSync(`${path}.${process.pid}`, path)
  } catch {
    // None yet: tsc writes a new one.
  }
}

/**
 * The type check runs in build mode (`tsc -b`): when no input changed since the last check that
 * passed it ends in a fraction of a second, where `tsc --noEmit` re-reads every file each time
 * (about 10 s of CPU, on the cores the tests need). Build mode judges sources by their times,
 * which installing other versions of the dependencies need not change: the build info is
 * dropped when package-lock.json is not the one it was made with.
 */
function freshAfterInstall(path: string): void {
  const stamp = `${path}.lock`
  const lock = createHash('sha256').update(readFileSync(join(ROOT, 'package-lock.json'))).digest('hex')
  let made = ''
  try {
    made = readFileSync(stamp, 'utf8')
  } catch {
    // Never stamped: checked from scratch below.
  }
  if (made === lock) return
  rmSync(path, { force: true })
  mkdirSync(dirname(stamp), { recursive: true })
  // Written beside and renamed, so a stamp hard-linked into other checkouts is not changed for them.
  writeFileSync(`${stamp}.${process.pid}`, lock)
  renameSync(`${stamp}.${process.pid}`, stamp)
}

const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { tsBuildInfoFile?: string } }
if (tsconfig.compilerOptions.tsBuildInfoFile !== undefined) {
  const buildInfo = join(ROOT, tsconfig.compilerOptions.tsBuildInfoFile)
  ownBuildInfo(buildInfo)
  freshAfterInstall(buildInfo)
}
const started = performance.now()
const results = await Promise.all(PARTS.map(run))
for (const r of results) if (!r.part.live && r.output !== '') process.stdout.write(`\n# ${r.part.name}\n${r.output}`)
// The reporter lists each part's failures with their errors at the end of its output; repeated
// here, last, so that the tail of a CI log shows them whatever order the parts ended in.
for (const r of results) {
  const at = r.code === 0 ? -1 : r.output.lastIndexOf(FAILING)
  if (at >= 0) process.stdout.write(`\n# ${r.part.name}: failures\n${r.output.slice(at, at + MAX_REPEATED)}\n`)
}
const summary = results.map((r) => `${r.part.name} ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code})`} in ${r.seconds.toFixed(1)} s`)
process.stdout.write(`\n# ${summary.join(', ')}; ${((performance.now() - started) / 1000).toFixed(1)} s in all\n`)
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1
