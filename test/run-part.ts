/**
 * One half of `npm test` (test/run.ts): every `*.test.ts` under a folder, `concurrency` at once,
 * reported with the spec reporter.
 *
 * The files run in `concurrency` lanes (test/run-lane.ts): processes that each take the next file
 * from one queue and run it in-process, so a lane loads fastify, undici and the gateway's modules
 * once instead of once per file (about 0.3 s of CPU a file). A file with the line
 * `// npm test: a process of its own (why)` runs alone in a process, as `node --test` runs every
 * file: for what a lane's earlier files would change under it (environment variables, module hooks,
 * OpenTelemetry's global tracer, modules already loaded).
 *
 * Files start longest first (longest-processing-time scheduling): how long each took is kept from
 * the previous run in node_modules/.cache, and a file with no record yet counts as the longest.
 * `node --test` sorts its files by name instead, so a long file late in the alphabet started when
 * the others were nearly done and ran alone at the end.
 *
 *   npx node test/run-part.ts <folder> <concurrency>
 *
 * Exits non-zero when any test failed.
 */
import { closeSync, globSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { run } from 'node:test'
import { spec } from 'node:test/reporters'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CACHE = join(ROOT, 'node_modules', '.cache')
const LANE = join(ROOT, 'test', 'run-lane.ts')
/** A file with this line runs in a process of its own; the line says why. */
const OWN_PROCESS = /^\/\/ npm test: a process of its own\b/m

export type Durations = Readonly<Record<string, number>>

/** Longest first by the durations recorded last time; unrecorded files first of all, then by name. */
export function longestFirst(files: readonly string[], durations: Durations): string[] {
  const known = (f: string): number => durations[f] ?? Number.POSITIVE_INFINITY
  return [...files].sort((a, b) => {
    const da = known(a)
    const db = known(b)
    if (da !== db) return da > db ? -1 : 1
    return a < b ? -1 : a > b ? 1 : 0
  })
}

/** The lanes' queue (a directory): queue.json, and one claim file per file taken. */
export interface Queue {
  readonly root: string
  /** Paths relative to root, in the order they are to start. */
  readonly files: readonly string[]
}

export function readQueue(dir: string): Queue {
  return JSON.parse(readFileSync(join(dir, 'queue.json'), 'utf8')) as Queue
}

/** Claims file `i` of the queue for this process: true for exactly one caller. */
export function claim(dir: string, i: number): boolean {
  try {
    closeSync(openSync(join(dir, `${i}.claim`), 'wx'))
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
}

function readDurations(path: string): Durations {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown
    if (parsed === null || typeof parsed !== 'object') return {}
    return Object.fromEntries(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])))
  } catch {
    return {}
  }
}

function writeDurations(path: string, durations: Durations): void {
  mkdirSync(CACHE, { recursive: true })
  writeFileSync(`${path}.${process.pid}`, JSON.stringify(durations, null, 1))
  renameSync(`${path}.${process.pid}`, path)
}

if (import.meta.main) {
  const [folder, concurrencyArg] = process.argv.slice(2)
  const concurrency = Number(concurrencyArg)
  if (folder === undefined || !Number.isInteger(concurrency) || concurrency < 1) {
    process.stderr.write('usage: npx node test/run-part.ts <folder> <concurrency>\n')
    process.exit(2)
  }
  const timesFile = join(CACHE, `velox-test-times-${folder.replace(/[^\w-]+/g, '_')}.json`)
  const previous = readDurations(timesFile)
  const files = globSync(`${folder}/**/*.test.ts`, { cwd: ROOT }).map((f) => relative(ROOT, join(ROOT, f))).sort()
  const ordered = longestFirst(files, previous)
  const own = ordered.filter((f) => OWN_PROCESS.test(readFileSync(join(ROOT, f), 'utf8')))
  const shared = ordered.filter((f) => !own.includes(f))
  const queueDir = mkdtempSync(join(tmpdir(), 'velox-test-queue-'))
  writeFileSync(join(queueDir, 'queue.json'), JSON.stringify({ root: ROOT, files: shared } satisfies Queue))
  const lanes = Array.from({ length: Math.min(concurrency, shared.length) }, () => LANE)
  const measured: Record<string, number> = {}
  const inQueue = new Set(shared)
  process.env['VELOX_TEST_QUEUE'] = queueDir
  // The files of their own first: listed after the lanes, they would wait for the queue to empty.
  const stream = run({ files: [...own.map((f) => join(ROOT, f)), ...lanes], concurrency, timeout: 120_000, cwd: ROOT })
  // A lane reports each of its files as a top-level test named after the file.
  const record = (data: { name: string; nesting: number; details: { duration_ms: number } }): void => {
    if (data.nesting === 0 && inQueue.has(data.name)) measured[data.name] = Math.round(data.details.duration_ms)
  }
  stream.on('test:pass', record)
  stream.on('test:fail', record)
  stream.on('test:summary', (data) => {
    if (data.file === undefined) {
      if (!data.success) process.exitCode = 1
      return
    }
    if (data.file !== LANE) measured[relative(ROOT, data.file)] = Math.round(data.duration_ms)
  })
  stream.on('end', () => {
    rmSync(queueDir, { recursive: true, force: true })
    // Only files that ran are kept: a deleted file's record goes with it.
    if (Object.keys(measured).length > 0) writeDurations(timesFile, measured)
  })
  stream.compose(spec).pipe(process.stdout)
}
