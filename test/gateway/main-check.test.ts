/**
 * `main.ts --check` boots without listening and exits: 0 when the gateway would be ready, 1 when
 * no upstream answered the warm-up. The image build runs it to write Node's compile cache.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAIN, configFile } from '../helpers/process.ts'

/**
 * Output goes to a file, not a pipe: Node makes its stdio pipes non-blocking, and its native debug
 * lines (NODE_DEBUG_NATIVE) written to a full pipe are dropped.
 */
async function check(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'velox-check-'))
  try {
    const fd = openSync(join(dir, 'out'), 'w')
    const child = spawn(process.execPath, [MAIN, '--check', ...args], { env: { ...process.env, VELOX_HOST: '127.0.0.1', VELOX_PORT: '0', ...env }, stdio: ['ignore', fd, fd] })
    closeSync(fd)
    const [code] = (await once(child, 'exit')) as [number | null]
    return { code, out: readFileSync(join(dir, 'out'), 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * One check on embedded defaults into a new compile cache, shared by the two tests below (a cold
 * start compiles every module: about 1.2 s of CPU, where a warm one takes 0.5 s).
 */
let coldCheck: Promise<{ cache: string; files: number; code: number | null; out: string }> | null = null
const cacheFiles = (dir: string): number => readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length
function checkIntoNewCache(): NonNullable<typeof coldCheck> {
  coldCheck ??= (async () => {
    const cache = mkdtempSync(join(tmpdir(), 'velox-compile-'))
    const { code, out } = await check([], { NODE_COMPILE_CACHE: cache })
    return { cache, files: cacheFiles(cache), code, out }
  })()
  return coldCheck
}
after(async () => {
  if (coldCheck !== null) rmSync((await coldCheck).cache, { recursive: true, force: true })
})

test('on embedded defaults it warms the simulator, never listens, exits 0 and leaves a compile cache', async () => {
  const { code, out, files } = await checkIntoNewCache()
  assert.equal(code, 0, out)
  assert.match(out, /upstream pools warmed/)
  assert.match(out, /check passed/)
  assert.doesNotMatch(out, /velox gateway listening/)
  assert.ok(files > 100, `compile cache entries: ${files}`)
})

test('a second start reads that cache and lets its in-memory entries go (runtime/compile-cache.ts)', async () => {
  const first = await checkIntoNewCache()
  assert.equal(first.code, 0, first.out)
  const cache = first.cache
  const written = first.files
  // Node's own debug lines for its compile cache: what was read, accepted, and released.
  const { code, out } = await check([], { NODE_COMPILE_CACHE: cache, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' })
  assert.equal(code, 0, out)
  assert.match(out, /V8 code cache for ESM file:\/\/\S+\/gateway\/src\/main\.ts was accepted/)
  assert.match(out, /retrieving transpile cache for StrippedTypeScript file:\/\/\S+\/gateway\/src\/server\.ts\.\.\.success/)
  // Released when the first module runs and when main() starts (--check exits before the boot
  // GC, the third release); Node's own write at exit adds one when entries are left. Without the
  // releases it is that one at most.
  const released = out.match(/Clear deserialized cache/g)?.length ?? 0
  assert.ok(released >= 2, `compile cache released ${released} times`)
  assert.equal(cacheFiles(cache), written, 'a warm cache gets no new entries')
})

test('with no upstream answering it exits 1', async () => {
  const file = configFile('upstreams:\n  - { name: down, url: "http://127.0.0.1:1", models: ["*"] }\n')
  const { code, out } = await check(['--config', file])
  assert.equal(code, 1, out)
  assert.match(out, /check failed/)
  assert.doesNotMatch(out, /velox gateway listening/)
})
