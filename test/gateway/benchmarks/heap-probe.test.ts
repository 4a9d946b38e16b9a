/**
 * The benchmarks' heap probe (gateway/benchmarks/lib/heap-probe.ts) reports memory after a full
 * GC, so memory per stream is what is held: garbage the process made and dropped is not in it.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HEAP_PROBE_PRELOAD, readHeapProbe } from '../../../gateway/benchmarks/lib/heap-probe.ts'

// Keeps 40 MB of objects alive long enough to reach the old generation, drops them, reports its
// heap (garbage included: nothing has collected it yet), then waits.
const CHILD = `
let kept = []
for (let i = 0; i < 400; i++) kept.push(new Array(10_000).fill(i).map((n) => ({ n })))
kept = null
process.stdout.write(JSON.stringify({ heapUsed: process.memoryUsage().heapUsed, gc: typeof gc }) + '\\n')
setInterval(() => {}, 1000)
`

test('a probe sample is taken after a GC, and each request gets a fresh one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'velox-heap-probe-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'sample.json')
  const child = spawn(process.execPath, ['--import', HEAP_PROBE_PRELOAD, '--input-type=module', '-e', CHILD], { env: { ...process.env, VELOX_BENCH_HEAP_PROBE: file }, stdio: ['ignore', 'pipe', 'inherit'] })
  after(() => child.kill('SIGKILL'))
  const [line] = (await once(child.stdout, 'data')) as [Buffer]
  const reported = JSON.parse(line.toString()) as { heapUsed: number; gc: string }
  assert.equal(reported.gc, 'undefined', 'the probe leaves no gc on the global')
  const first = await readHeapProbe(child.pid!, file)
  assert.ok(first.heapUsed < reported.heapUsed - 20 * 1024 * 1024, `heap after the probe's GC ${first.heapUsed} vs ${reported.heapUsed} with the garbage`)
  assert.ok(first.rss > 0 && first.gcMs >= 0 && first.endedAt >= first.startedAt)
  const second = await readHeapProbe(child.pid!, file)
  assert.equal(second.seq, first.seq + 1)
})
