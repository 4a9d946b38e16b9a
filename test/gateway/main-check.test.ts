/**
 * `main.ts --check` boots without listening and exits: 0 when the gateway would be ready, 1 when
 * no upstream answered the warm-up. The image build runs it to write Node's compile cache.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MAIN, configFile } from '../helpers/process.ts'

async function check(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [MAIN, '--check', ...args], { env: { ...process.env, VELOX_HOST: '127.0.0.1', VELOX_PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c))
  child.stderr.on('data', (c: Buffer) => (out += c))
  const [code] = (await once(child, 'exit')) as [number | null]
  return { code, out }
}

test('on embedded defaults it warms the simulator, never listens, exits 0 and leaves a compile cache', async (t) => {
  const cache = mkdtempSync(join(tmpdir(), 'velox-compile-'))
  t.after(() => rmSync(cache, { recursive: true, force: true }))
  const { code, out } = await check([], { NODE_COMPILE_CACHE: cache })
  assert.equal(code, 0, out)
  assert.match(out, /upstream pools warmed/)
  assert.match(out, /check passed/)
  assert.doesNotMatch(out, /velox gateway listening/)
  const entries = readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
  assert.ok(entries.length > 100, `compile cache entries: ${entries.length}`)
})

test('with no upstream answering it exits 1', async () => {
  const file = configFile('upstreams:\n  - { name: down, url: "http://127.0.0.1:1", models: ["*"] }\n')
  const { code, out } = await check(['--config', file])
  assert.equal(code, 1, out)
  assert.match(out, /check failed/)
  assert.doesNotMatch(out, /velox gateway listening/)
})
