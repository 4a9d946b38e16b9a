/** npm test's scheduling (test/run-part.ts): files start longest first, by the previous run's durations. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { longestFirst } from '../run-part.ts'

test('files start longest first; files without a recorded duration start before all of them', () => {
  const files = ['a.test.ts', 'b.test.ts', 'c.test.ts', 'd.test.ts', 'e.test.ts']
  assert.deepEqual(longestFirst(files, { 'a.test.ts': 100, 'b.test.ts': 9_000, 'c.test.ts': 2_000, 'gone.test.ts': 50_000 }), ['d.test.ts', 'e.test.ts', 'b.test.ts', 'c.test.ts', 'a.test.ts'])
  assert.deepEqual(longestFirst(files, {}), files, 'with no record, by name')
  assert.deepEqual(longestFirst(['y.test.ts', 'x.test.ts'], { 'x.test.ts': 5, 'y.test.ts': 5 }), ['x.test.ts', 'y.test.ts'], 'ties by name')
})
