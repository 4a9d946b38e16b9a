/**
 * Imports between gateway folders flow one way (DESIGN.md: routes -> proxy -> routing -> upstream).
 * Each folder (or root file) sits on a layer; a file may import its own folder, or a folder on a
 * lower layer, never one above it or beside it. Every folder's `config.ts` is part of the config
 * layer: it holds that folder's piece of the one schema, which config/schema.ts assembles.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { filesUnder, importsOf } from '../helpers/source-imports.ts'

const SRC = new URL('../../gateway/src/', import.meta.url).pathname

/** Top to bottom. Root files are named with their extension, folders without. */
const LAYERS: readonly (readonly string[])[] = [
  ['main.ts'],
  ['server.ts'],
  ['admin'],
  ['gateway.ts', 'http-errors.ts'],
  ['cluster', 'simulator'],
  ['proxy'],
  ['runtime'],
  ['cache', 'limits'],
  ['auth'],
  ['routing'],
  ['upstream'],
  ['providers'],
  ['protocols'],
  ['telemetry'],
  ['config'],
  ['errors.ts'],
]
const CONFIG_LAYER = LAYERS.findIndex((l) => l.includes('config'))

/** The folder (or root file) a source file belongs to. */
function unitOf(file: string): string {
  return relative(SRC, file).split('/')[0]!
}

function layerOf(file: string): number {
  const unit = unitOf(file)
  if (unit.endsWith('.ts') === false && file.endsWith('/config.ts')) return CONFIG_LAYER
  const i = LAYERS.findIndex((l) => l.includes(unit))
  assert.notEqual(i, -1, `${relative(SRC, file)}: ${unit} has no layer; add it to LAYERS in ${relative(process.cwd(), new URL(import.meta.url).pathname)}`)
  return i
}

/**
 * Inside a folder anything goes, except that its config.ts (on the config layer) may not reach
 * back into the folder; between folders only downwards, or between the schema's pieces.
 */
function allowed(file: string, target: string): boolean {
  const from = layerOf(file)
  const to = layerOf(target)
  if (from === CONFIG_LAYER && to === CONFIG_LAYER) return true
  return unitOf(file) === unitOf(target) ? to >= from : to > from
}

function wrongWay(files: readonly string[]): string[] {
  const problems: string[] = []
  for (const file of files) {
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec)
      if (target.startsWith(SRC) && !allowed(file, target)) problems.push(`${relative(SRC, file)} -> ${relative(SRC, target)}`)
    }
  }
  return problems
}

test('the import scanner sees every form of import', () => {
  const seen = importsOf(`import a from './a.ts'\nimport type { B } from '../b/b.ts'\nimport {\n  c,\n  d,\n} from './c.ts'\nexport { e } from './e.ts'\nexport * from './f.ts'\nconst g = await import('./g.ts')\nimport './h.ts'\nimport x from 'undici'`)
  assert.deepEqual(seen, ['./a.ts', '../b/b.ts', './c.ts', './e.ts', './f.ts', './g.ts', './h.ts'])
})

test('wrong-way imports are caught', () => {
  const at = (path: string): string => join(SRC, path)
  assert.equal(allowed(at('proxy/call.ts'), at('routing/router.ts')), true)
  assert.equal(allowed(at('routing/router.ts'), at('proxy/call.ts')), false, 'upwards')
  assert.equal(allowed(at('upstream/pool-sizer.ts'), at('routing/member.ts')), false, 'upwards')
  assert.equal(allowed(at('runtime/snapshot.ts'), at('proxy/context.ts')), false, 'upwards: the snapshot may not know the call context')
  assert.equal(allowed(at('proxy/pipeline.ts'), at('upstream/upstream.ts')), true, 'downwards, past routing')
  assert.equal(allowed(at('cache/index.ts'), at('limits/index.ts')), false, 'sideways')
  assert.equal(allowed(at('config/schema.ts'), at('routing/config.ts')), true, 'pieces of the schema')
  assert.equal(allowed(at('routing/config.ts'), at('routing/hash.ts')), false, 'a schema piece reaching into its folder')
  assert.equal(allowed(at('routing/router.ts'), at('routing/config.ts')), true)
  assert.equal(allowed(at('main.ts'), at('server.ts')), true)
  assert.equal(allowed(at('server.ts'), at('main.ts')), false)
  assert.throws(() => layerOf(at('nowhere/x.ts')), /nowhere has no layer/)
})

test('imports between gateway folders flow one way', () => {
  const files = filesUnder(SRC)
  assert.ok(files.length > 50)
  assert.deepEqual(wrongWay(files), [])
})
