/**
 * The harness's GC totals tell full mark-compacts apart, from both of its sources: V8's own
 * `--trace-gc` lines (a real Node process's) and prom-client's `nodejs_gc_duration_seconds`
 * histogram in the text format it exposes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { GcTraceCounter, scrapeGc } from '../../../gateway/benchmarks/lib/proc-stats.ts'

test('--trace-gc lines: every collection counted, mark-compacts apart', () => {
  // Two scavenges' worth of garbage at least, then one full GC asked for.
  const script = 'let a = []; for (let i = 0; i < 2e5; i++) a.push({ i }); a = null; for (let i = 0; i < 2e5; i++) ({ i }); gc()'
  const out = execFileSync(process.execPath, ['--trace-gc', '--expose-gc', '--max-semi-space-size=1', '-e', script], { encoding: 'utf8' })
  const counter = new GcTraceCounter()
  for (const line of out.split('\n')) counter.onLine(line)
  const totals = counter.totals()
  const marks = out.split('\n').filter((line) => / Mark-Compact /.test(line)).length
  assert.ok(marks >= 1, out)
  assert.equal(totals.majorCount, marks)
  assert.ok(totals.count > totals.majorCount, out)
  assert.ok(totals.pauseMs > 0)
})

test('/metrics: collections by kind from prom-client\'s GC histogram', async () => {
  // What prom-client's default `gc` metric exposes (its histogram, one series per kind).
  const exposition = [
    '# HELP nodejs_gc_duration_seconds Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    '# TYPE nodejs_gc_duration_seconds histogram',
    'nodejs_gc_duration_seconds_bucket{le="0.001",kind="minor"} 40',
    'nodejs_gc_duration_seconds_sum{kind="minor"} 0.025',
    'nodejs_gc_duration_seconds_count{kind="minor"} 41',
    'nodejs_gc_duration_seconds_sum{kind="major"} 0.012',
    'nodejs_gc_duration_seconds_count{kind="major"} 3',
    'nodejs_gc_duration_seconds_sum{kind="incremental"} 0.004',
    'nodejs_gc_duration_seconds_count{kind="incremental"} 5',
    '',
  ].join('\n')
  const server = createServer((req, res) => {
    if (req.url === '/metrics') res.end(exposition)
    else res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const totals = await scrapeGc(`${origin}/metrics`)
    assert.ok(totals !== null)
    assert.equal(totals.count, 49)
    assert.equal(totals.majorCount, 3)
    assert.ok(Math.abs(totals.pauseMs - 41) < 1e-9, String(totals.pauseMs))
    assert.equal(await scrapeGc(`${origin}/elsewhere`), null)
  } finally {
    server.close()
  }
})
