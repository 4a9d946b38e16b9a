/**
 * runtime/heap-flags.ts on this Node's own V8: a process that drops a large Buffer per "request"
 * (as the gateway drops a long request body) has it reclaimed by scavenges once the flags are set,
 * and by full mark-compacts without them; a process started with a flag either way keeps it.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { HEAP_FLAGS } from '../../gateway/src/runtime/heap-flags.ts'

const HEAP_FLAGS_FILE = fileURLToPath(new URL('../../gateway/src/runtime/heap-flags.ts', import.meta.url))

/**
 * Runs 600 "requests" of a 512 KB body read in 64 KB chunks and put together, under --trace-gc;
 * counts the collections V8 printed, by kind.
 */
function collections(nodeArgs: string[]): { applied: string[]; major: number; minor: number } {
  const script = `
    import { applyHeapFlags } from ${JSON.stringify(HEAP_FLAGS_FILE)}
    const applied = applyHeapFlags()
    let body = null
    for (let i = 0; i < 600; i++) {
      const chunks = Array.from({ length: 8 }, () => Buffer.allocUnsafe(65536).fill(i))
      body = Buffer.concat(chunks)
    }
    console.log('applied=' + JSON.stringify(applied) + ' last=' + body[0])
  `
  const out = execFileSync(process.execPath, ['--trace-gc', ...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8' })
  const count = (kind: string): number => out.split('\n').filter((line) => line.includes(`: ${kind} `)).length
  const applied = /applied=(\[.*\]) last=87/.exec(out)
  assert.ok(applied !== null, out.slice(-500))
  return { applied: JSON.parse(applied[1]!) as string[], major: count('Mark-Compact'), minor: count('Scavenge') }
}

test('dropped Buffers are reclaimed by scavenges with the flags, by mark-compacts without them', () => {
  const set = collections([])
  assert.deepEqual(set.applied, [...HEAP_FLAGS])
  assert.ok(set.minor > 0, JSON.stringify(set))
  const unset = collections(['--no-external-memory-accounted-in-global-limit', '--scavenger-max-new-space-capacity-mb=32'])
  assert.deepEqual(unset.applied, [], 'a process started with the flags set either way keeps them')
  // 600 MB of short-lived Buffers: V8 13.6 runs a mark-compact every 64 MB of them by default.
  assert.ok(unset.major >= 5, JSON.stringify(unset))
  assert.ok(set.major * 4 <= unset.major, `with the flags ${JSON.stringify(set)}, without ${JSON.stringify(unset)}`)
})

test('each flag given at start is kept, the other is still set', () => {
  const explicit = collections(['--external-memory-accounted-in-global-limit'])
  assert.deepEqual(explicit.applied, ['--scavenger-max-new-space-capacity-mb=8'])
  assert.ok(explicit.minor > 0, JSON.stringify(explicit))
  // The young generation's cap alone, set after start, hands part of them to scavenges.
  const capOnly = collections(['--no-external-memory-accounted-in-global-limit'])
  assert.deepEqual(capOnly.applied, ['--scavenger-max-new-space-capacity-mb=8'])
  const neither = collections(['--no-external-memory-accounted-in-global-limit', '--scavenger-max-new-space-capacity-mb=32'])
  assert.ok(capOnly.minor > neither.minor && capOnly.major < neither.major, JSON.stringify({ capOnly, neither }))
})
