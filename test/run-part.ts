/**
 * One half of `npm test` (test/run.ts): every `*.test.ts` under a folder, each file in its own
 * process as `node --test` runs them, `concurrency` files at once, reported with the spec reporter.
 *
 * Files start longest first (longest-processing-time scheduling): how long each took is kept from
 * the previous run in node_modules/.cache, and a file with no record yet counts as the longest.
 * `node --test` sorts its files by name instead, so a long file late in the alphabet started when
 * the others were nearly done and ran alone at the end.
 *
 *   node test/run-part.ts <folder> <concurrency>
 *
 * Exits non-zero when any test failed.
 */
import { globSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { run } from 'node:test'
import { spec } from 'node:test/reporters'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CACHE = join(ROOT, 'node_modules', '.cache')

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
    process.stderr.write('usage: node test/run-part.ts <folder> <concurrency>\n')
    process.exit(2)
  }
  const timesFile = join(CACHE, `velox-test-times-${folder.replace(/[^\w-]+/g, '_')}.json`)
  const previous = readDurations(timesFile)
  const files = globSync(`${folder}/**/*.test.ts`, { cwd: ROOT }).map((f) => relative(ROOT, join(ROOT, f))).sort()
  const ordered = longestFirst(files, previous)
  const measured: Record<string, number> = {}
  const stream = run({ files: ordered.map((f) => join(ROOT, f)), concurrency, timeout: 120_000, cwd: ROOT })
  stream.on('test:summary', (data) => {
    if (data.file === undefined) {
      if (!data.success) process.exitCode = 1
      return
    }
    measured[relative(ROOT, data.file)] = Math.round(data.duration_ms)
  })
  stream.on('end', () => {
    // Only files that ran are kept: a deleted file's record goes with it.
    if (Object.keys(measured).length > 0) writeDurations(timesFile, measured)
  })
  stream.compose(spec).pipe(process.stdout)
}
