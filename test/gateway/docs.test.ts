/**
 * The README and docs/ stay true to the repository: the layout names every folder, and every
 * command they show runs as written on a machine whose system `node` is older than the project's
 * (a TypeScript file goes through `npx node`, `npm run` or `npm start`, never a bare `node`).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = new URL('../../', import.meta.url).pathname
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8')

/** The README's `## Repository layout` code block. */
function layoutBlock(): string {
  const readme = read('README.md')
  const section = readme.slice(readme.indexOf('## Repository layout'))
  const block = /```\n([\s\S]*?)```/.exec(section)
  assert.ok(block, 'README has a Repository layout code block')
  return block[1]!
}

/** Every folder that holds a tracked file, at any depth. */
function trackedFolders(): string[] {
  const files = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter((f) => f !== '')
  const folders = new Set<string>()
  for (const f of files) {
    const parts = f.split('/').slice(0, -1)
    for (let i = 1; i <= parts.length; i++) folders.add(parts.slice(0, i).join('/'))
  }
  return [...folders].sort()
}

/** Lines a reader would run: fenced shell blocks, and code spans in prose (tables of results excepted). */
function commandLines(markdown: string): string[] {
  const out: string[] = []
  let fence: string | null = null
  for (const line of markdown.split('\n')) {
    const open = /^```(\S*)/.exec(line)
    if (open) {
      fence = fence === null ? open[1]! : null
      continue
    }
    if (fence !== null) {
      if (fence === '' || fence === 'sh' || fence === 'bash' || fence === 'console') out.push(line)
    } else if (!line.startsWith('|')) {
      for (const span of line.matchAll(/`([^`]+)`/g)) out.push(span[1]!)
    }
  }
  return out
}

/** A bare `node` running a TypeScript file (the system Node may not strip types). */
const BARE_NODE_TS = /(?<![\w./-])(?<!npx\s+)node\s+(?:--\S+\s+)*[\w./-]+\.ts\b/

function docFiles(): string[] {
  const gatewayReadmes = readdirSync(join(ROOT, 'gateway/src'), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => `gateway/src/${e.name}/README.md`)
    .filter((f) => { try { read(f); return true } catch { return false } })
  return ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), ...gatewayReadmes]
}

/**
 * Folders the block does not name. A top-level folder is named by a line of its own (`infra/`,
 * `.ci/run`); a folder inside one is named as `name/` within its top-level folder's lines (alone on a line, or in
 * a list), so `test/gateway/cache` is not taken as named by `gateway/src/cache`.
 */
function missingFrom(block: string, folders: readonly string[]): string[] {
  const sections = new Map<string, string>()
  let top = ''
  for (const line of block.split('\n')) {
    if (/^\S/.test(line)) top = line.split(/\s/)[0]!
    sections.set(top, (sections.get(top) ?? '') + line + '\n')
  }
  const linesOf = (top: string): string => [...sections].filter(([key]) => key.startsWith(`${top}/`)).map(([, lines]) => lines).join('')
  return folders.filter((f) => {
    const parts = f.split('/')
    const lines = linesOf(parts[0]!)
    return parts.length === 1 ? lines === '' : !lines.includes(`${parts.at(-1)}/`)
  })
}

test('the README layout names every folder', () => {
  const block = layoutBlock()
  const folders = trackedFolders()
  assert.ok(folders.includes('gateway/src/proxy') && folders.includes('infra/lib'), folders.join(', '))
  assert.deepEqual(missingFrom(block, folders), [])
  const docs = readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => f.slice(0, -3))
  assert.deepEqual(docs.filter((d) => !new RegExp(`\\b${d}`).test(block)), [], 'docs/ pages the layout does not name')
})

test('a folder missing from the layout is reported', () => {
  const block = 'gateway/\n  src/     sources\n    proxy/ the pipeline\n    cache/ caches\ninfra/   components/, lib/\ntest/    tests\n'
  const folders = ['gateway', 'gateway/src', 'gateway/src/proxy', 'gateway/src/admin', 'infra/lib', 'infra/tools', 'test', 'test/cache', 'regions']
  assert.deepEqual(missingFrom(block, folders), ['gateway/src/admin', 'infra/tools', 'test/cache', 'regions'])
})

test('no command in the docs runs a TypeScript file with a bare node', () => {
  assert.ok(BARE_NODE_TS.test('node gateway/src/main.ts --config x.yaml'))
  assert.ok(BARE_NODE_TS.test('cd x && node --test-only infra/a.ts'))
  assert.ok(!BARE_NODE_TS.test('npx node gateway/src/main.ts'))
  assert.ok(!BARE_NODE_TS.test('node_modules/.bin/node gateway/src/main.ts'))
  assert.ok(!BARE_NODE_TS.test('node -p 1'))
  const found: string[] = []
  let lines = 0
  for (const f of docFiles()) {
    for (const line of commandLines(read(f))) {
      lines++
      if (BARE_NODE_TS.test(line)) found.push(`${f}: ${line.trim()}`)
    }
  }
  assert.ok(lines > 100, `${lines} command lines read`)
  assert.deepEqual(found, [])
})
