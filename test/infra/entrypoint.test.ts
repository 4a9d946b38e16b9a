/**
 * How Pulumi runs the program: Pulumi.yaml asks the nodejs language host for typescript: false,
 * so it import()s main (infra/, resolved to infra/index.ts because infra/package.json is "type":
 * "module") and Node 24 strips the types. These checks pin each link of that chain offline.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { parse } from 'yaml'
import { REPO_ROOT } from '../../infra/tools/stack-files.ts'

const project = parse(readFileSync(join(REPO_ROOT, 'Pulumi.yaml'), 'utf8')) as Record<string, any>

test('Pulumi.yaml: project velox, nodejs without ts-node, main infra/, stacks in regions/', () => {
  assert.equal(project['name'], 'velox')
  assert.equal(project['runtime'].name, 'nodejs')
  assert.equal(project['runtime'].options.typescript, false)
  assert.equal(project['runtime'].options.packagemanager, 'npm')
  assert.equal(project['main'], 'infra/')
  assert.equal(project['stackConfigDir'], 'regions')
})

test('main resolves the way the language host resolves it for an ES module package', () => {
  const dir = join(REPO_ROOT, project['main'])
  // The host reads the package.json nearest to main: the infra workspace's own.
  assert.ok(existsSync(join(dir, 'package.json')), 'infra/ is a workspace with its own package.json')
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  assert.equal(pkg.type, 'module', 'the host uses import(), not require()')
  // The host picks index.js, then index.mjs, then index.ts: a stray index.js would shadow the program.
  assert.equal(existsSync(join(dir, 'index.js')), false)
  assert.equal(existsSync(join(dir, 'index.mjs')), false)
  assert.ok(existsSync(join(dir, 'index.ts')))
  assert.ok(Number(process.versions.node.split('.')[0]) >= 24)
  assert.equal(process.features.typescript, 'strip')
})

test('ts-node is not installed: nothing but Node itself can be running the TypeScript', () => {
  const require = createRequire(join(REPO_ROOT, 'package.json'))
  assert.throws(() => require.resolve('ts-node'), /Cannot find module/)
})

test('the entry point loads under plain Node 24 with no loader flags (and needs the engine)', () => {
  // Without an engine the program must get as far as declaring its first resource: every module
  // parsed and type-stripped, stack config read. Pulumi then refuses to run outside the CLI.
  let stderr = ''
  try {
    execFileSync(process.execPath, [join(REPO_ROOT, 'infra', 'index.ts')], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', PULUMI_CONFIG: '{}' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    })
  } catch (err) {
    stderr = String((err as { stderr?: Buffer }).stderr ?? '')
  }
  assert.doesNotMatch(stderr, /ERR_UNKNOWN_FILE_EXTENSION|SyntaxError|ERR_MODULE_NOT_FOUND|ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX/)
  // Our own code ran: the stack-name check in infra/lib/naming.ts is what stops it.
  assert.match(stderr, /must be named <stage>-<region>/, stderr.slice(0, 500))
})
