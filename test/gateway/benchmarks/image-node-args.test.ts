/**
 * The benchmark measures the gateway as the image runs it: the node flags the harness gives every
 * gateway are the ones gateway/Dockerfile sets in NODE_OPTIONS, and a Node started with them
 * really runs one V8 background thread.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { GATEWAY_IMAGE_NODE_ARGS, REPO_ROOT } from '../../../gateway/benchmarks/lib/targets.ts'

test("the harness's gateway flags are the image's NODE_OPTIONS", () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'gateway/Dockerfile'), 'utf8')
  const lines = dockerfile.split('\n').filter((line) => line.startsWith('ENV NODE_OPTIONS='))
  assert.equal(lines.length, 1, 'one ENV NODE_OPTIONS line in gateway/Dockerfile')
  assert.deepEqual(lines[0]!.slice('ENV NODE_OPTIONS='.length).replace(/^"|"$/g, '').split(/\s+/), [...GATEWAY_IMAGE_NODE_ARGS])
})

test('with those flags a Node process has one V8 worker thread', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  const script = "const fs = require('node:fs'); console.log(fs.readdirSync('/proc/self/task').filter((t) => fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'V8Worker').length)"
  assert.equal(execFileSync(process.execPath, [...GATEWAY_IMAGE_NODE_ARGS, '-e', script], { encoding: 'utf8' }).trim(), '1')
})
