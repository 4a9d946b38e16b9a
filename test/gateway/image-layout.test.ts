/**
 * The gateway image has every package the gateway runs on. gateway/Dockerfile installs the gateway
 * workspace in one stage and copies folders out of it into the next; npm puts a workspace's
 * dependency under `gateway/node_modules/` when the root's `node_modules/` holds another version of
 * it, so a copy of the root's folder alone leaves those out (the image then fails to start with
 * tracing on: `Cannot find package '@opentelemetry/core'`). No Docker engine is needed: the
 * packages the gateway needs are resolved from package-lock.json as Node resolves them, and each
 * must lie under a folder the image's last stage copies. The sources it copies are gateway/src/
 * alone, so no gateway source may reach outside it either.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileUrlsOf, filesUnder, importsOf } from '../helpers/source-imports.ts'

const ROOT = new URL('../../', import.meta.url).pathname

interface LockEntry {
  dev?: boolean
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
}

/** Where Node finds `name` required from the package installed at `from` (a lockfile path). */
function resolveFrom(packages: Record<string, LockEntry>, from: string, name: string): string | null {
  let dir = from
  for (;;) {
    const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`
    if (packages[candidate] !== undefined) return candidate
    if (dir === '') return null
    // Up one package: `a/node_modules/@s/b` -> `a`, `gateway` -> ''.
    const at = dir.lastIndexOf('/node_modules/')
    dir = at === -1 ? '' : dir.slice(0, at)
  }
}

/** Every installed location the workspace's production dependencies reach. */
function runtimeLocations(packages: Record<string, LockEntry>, workspace: string): string[] {
  const seen = new Set<string>()
  const visit = (location: string, optional: boolean): void => {
    const entry = packages[location]!
    const deps = { ...entry.dependencies, ...entry.optionalDependencies }
    for (const name of Object.keys(deps)) {
      const found = resolveFrom(packages, location, name)
      if (found === null) {
        // An optional dependency for another platform is not in the lockfile's tree for this one.
        if (optional || entry.optionalDependencies?.[name] !== undefined) continue
        throw new Error(`${location} needs ${name}, which the lockfile does not install`)
      }
      if (seen.has(found)) continue
      seen.add(found)
      visit(found, entry.optionalDependencies?.[name] !== undefined)
    }
  }
  visit(workspace, false)
  return [...seen].sort()
}

/** Paths (relative to the build's WORKDIR) the Dockerfile's last stage copies from an earlier one. */
function copiedFromEarlierStage(dockerfile: string): string[] {
  const stages = dockerfile.split(/^FROM /m)
  const last = stages.at(-1)!
  const out: string[] = []
  for (const m of last.matchAll(/^COPY\s+--from=\S+\s+(\S+)\s+\S+\s*$/gm)) out.push(m[1]!.replace(/^\/app\//, '').replace(/\/$/, ''))
  return out
}

function missing(locations: readonly string[], copied: readonly string[]): string[] {
  return locations.filter((l) => !copied.some((c) => l === c || l.startsWith(`${c}/`)))
}

test('every package the gateway runs on is copied into the image', () => {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
  const locations = runtimeLocations(lock.packages, 'gateway')
  assert.ok(locations.includes('node_modules/fastify') && locations.length > 50, `resolved ${locations.length} packages`)
  assert.ok(locations.every((l) => lock.packages[l]!.dev !== true), 'a dev-only package among the runtime ones')
  const copied = copiedFromEarlierStage(readFileSync(join(ROOT, 'gateway/Dockerfile'), 'utf8'))
  assert.deepEqual(missing(locations, copied), [])
})

test('a package installed under the workspace and not copied is reported', () => {
  const packages: Record<string, LockEntry> = {
    gateway: { dependencies: { a: '1', b: '2' } },
    'node_modules/a': { dependencies: { b: '1' } },
    'node_modules/b': {},
    'gateway/node_modules/b': { dependencies: { c: '1' } },
    'node_modules/c': {},
  }
  const locations = runtimeLocations(packages, 'gateway')
  assert.deepEqual(locations, ['gateway/node_modules/b', 'node_modules/a', 'node_modules/b', 'node_modules/c'])
  const dockerfile = 'FROM x AS deps\nCOPY a b\nFROM y\nCOPY --from=deps /app/node_modules ./node_modules\nCOPY gateway/src ./gateway/src\n'
  assert.deepEqual(missing(locations, copiedFromEarlierStage(dockerfile)), ['gateway/node_modules/b'])
})

/** Relative imports and `new URL('…', import.meta.url)` paths in the TypeScript files under `dir` that leave it. */
function reachingOutside(dir: string): string[] {
  const out: string[] = []
  for (const file of filesUnder(dir)) {
    const source = readFileSync(file, 'utf8')
    for (const specifier of [...importsOf(source), ...fileUrlsOf(source)]) {
      if (relative(dir, resolve(dirname(file), specifier)).startsWith('..')) out.push(`${relative(ROOT, file)}: ${specifier}`)
    }
  }
  return out
}

test('no gateway source reaches outside gateway/src, the only sources the image copies', () => {
  const dockerfile = readFileSync(join(ROOT, 'gateway/Dockerfile'), 'utf8')
  assert.match(dockerfile, /^COPY gateway\/src \.\/gateway\/src$/m)
  const src = join(ROOT, 'gateway/src')
  assert.deepEqual(reachingOutside(src), [])
  // The check itself: the benchmarks do import from gateway/src, which is outside their folder.
  assert.ok(reachingOutside(join(ROOT, 'gateway/benchmarks')).some((f) => f.includes('../src/')))
})
