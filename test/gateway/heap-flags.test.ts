/**
 * runtime/heap-flags.ts on this Node's own V8: a process that drops a large Buffer per "request"
 * (as the gateway drops a long request body) has it reclaimed by scavenges once the flag is set,
 * and by full mark-compacts without it; a process started with the flag either way keeps it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const HEAP_FLAGS = fileURLToPath(new URL('../../gateway/src/runtime/heap-flags.ts', import.meta.url))

/**
 * Runs 600 "requests" of a 512 KB body read in 64 KB chunks and put together, under --trace-gc;
 * counts the collections V8 printed, by kind.
 */
function collections(nodeArgs: string[]): { applied: boolean; major: number; minor: number } {
  const script = `
    import { applyHeapFlags } from ${JSON.stringify(HEAP_FLAGS)}
    const applied = applyHeapFlags()
    let body = null
    for (let i = 0; i < 600; i++) {
      const chunks = Array.from({ length: 8 }, () => Buffer.allocUnsafe(65536).fill(i))
      body = Buffer.concat(chunks)
    }
    console.log('applied=' + applied + ' last=' + body[0])
  `
  const out = execFileSync(process.execPath, ['--trace-gc', ...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8' })
  const count = (kind: string): number => out.split('\n').filter((line) => line.includes(`: ${kind} `)).length
  assert.match(out, /applied=(true|false) last=87/)
  return { applied: out.includes('applied=true'), major: count('Mark-Compact'), minor: count('Scavenge') }
}

test('dropped Buffers are reclaimed by scavenges with the flag, by mark-compacts without it', () => {
  const set = collections([])
  assert.equal(set.applied, true)
  assert.ok(set.minor > 0, JSON.stringify(set))
  const unset = collections(['--no-external-memory-accounted-in-global-limit'])
  assert.equal(unset.applied, false, 'a process started with the flag turned off keeps it off')
  // 600 MB of short-lived Buffers: V8 13.6 runs a mark-compact every 64 MB of them without the flag.
  assert.ok(unset.major >= 5, JSON.stringify(unset))
  assert.ok(set.major * 4 <= unset.major, `with the flag ${JSON.stringify(set)}, without ${JSON.stringify(unset)}`)
})

test('a process started with the flag keeps it, and the flag is only set once', () => {
  const explicit = collections(['--external-memory-accounted-in-global-limit'])
  assert.equal(explicit.applied, false)
  assert.ok(explicit.minor > 0, JSON.stringify(explicit))
})
