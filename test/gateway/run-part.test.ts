/**
 * npm test's scheduling (test/run-part.ts): files start longest first, by the previous run's
 * durations, and the lanes that run them (test/run-lane.ts) never take the same file twice.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { claim, longestFirst } from '../run-part.ts'

test('files start longest first; files without a recorded duration start before all of them', () => {
  const files = ['a.test.ts', 'b.test.ts', 'c.test.ts', 'd.test.ts', 'e.test.ts']
  assert.deepEqual(longestFirst(files, { 'a.test.ts': 100, 'b.test.ts': 9_000, 'c.test.ts': 2_000, 'gone.test.ts': 50_000 }), ['d.test.ts', 'e.test.ts', 'b.test.ts', 'c.test.ts', 'a.test.ts'])
  assert.deepEqual(longestFirst(files, {}), files, 'with no record, by name')
  assert.deepEqual(longestFirst(['y.test.ts', 'x.test.ts'], { 'x.test.ts': 5, 'y.test.ts': 5 }), ['x.test.ts', 'y.test.ts'], 'ties by name')
})

test('each queued file is claimed once, whichever lane asks first', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'velox-queue-test-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  assert.equal(claim(dir, 0), true)
  assert.equal(claim(dir, 0), false, 'a second claim of the same file')
  assert.equal(claim(dir, 1), true, 'the next file is still free')
})
