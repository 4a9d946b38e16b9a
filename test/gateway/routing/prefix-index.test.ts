import assert from 'node:assert/strict'
import { test } from 'node:test'
import { prefixBlocks } from '../../../gateway/src/routing/prefix-hash.ts'
import { PrefixIndex } from '../../../gateway/src/routing/prefix-index.ts'
import { makeMembers } from './helpers.ts'

const SYSTEM = 'You are a helpful assistant for a large retailer. '.repeat(40)
const chat = (...contents: string[]) => ({ model: 'm', messages: contents.map((content, i) => ({ role: i === 0 ? 'system' : 'user', content })) })

test('prefix hashes: shared leading text gives shared leading blocks, chained', () => {
  const a = prefixBlocks(chat(SYSTEM, 'first question'), 'm', 64, 256)!
  const b = prefixBlocks(chat(SYSTEM, 'another one entirely'), 'm', 64, 256)!
  const full = Math.floor(SYSTEM.length / 64)
  for (let i = 0; i < full; i++) assert.equal(a[i], b[i])
  assert.notEqual(prefixBlocks(chat('x' + SYSTEM), 'm', 64, 256)![0], a[0], 'a changed first character changes every block')
  assert.notEqual(prefixBlocks(chat(SYSTEM), 'other-model', 64, 256)![0], a[0], 'seeded by the model')
  assert.equal(prefixBlocks(chat('short'), 'm', 64, 256), null, 'no full block')
  assert.equal(prefixBlocks(chat(SYSTEM), 'm', 64, 5)!.length, 5, 'at most maxBlocks')
  assert.ok(prefixBlocks({ model: 'm', prompt: SYSTEM }, 'm', 64, 256)!.length >= full, 'completions prompts too')
  // Moving text between messages is a different prompt.
  const split = prefixBlocks({ model: 'm', messages: [{ role: 'user', content: SYSTEM.slice(0, 100) }, { role: 'user', content: SYSTEM.slice(100) }] }, 'm', 64, 256)!
  const whole = prefixBlocks({ model: 'm', messages: [{ role: 'user', content: SYSTEM }] }, 'm', 64, 256)!
  assert.notEqual(split.at(-1), whole.at(-1))
})

test('index: a member matches as far as it holds consecutive leading blocks', () => {
  const members = makeMembers(3)
  const index = new PrefixIndex(1000, 4)
  index.record(Uint32Array.of(1, 2, 3, 4), members[0]!)
  index.record(Uint32Array.of(1, 2, 9), members[1]!)
  assert.equal(index.match(Uint32Array.of(1, 2, 3, 5), members), 3)
  assert.deepEqual([...index.matched.subarray(0, 3)], [3, 2, 0])
  assert.equal(index.match(Uint32Array.of(7, 2, 3), members), 0)
})

test('index: at most membersPerBlock members per block, most recent first', () => {
  const members = makeMembers(4)
  const index = new PrefixIndex(1000, 2)
  for (const m of members) index.record(Uint32Array.of(1), m)
  index.match(Uint32Array.of(1), members)
  assert.deepEqual([...index.matched.subarray(0, 4)], [0, 0, 1, 1])
})

test('index: bounded; the least recently touched blocks go first', () => {
  const members = makeMembers(1)
  const index = new PrefixIndex(8, 4)
  for (let h = 1; h <= 8; h++) index.record(Uint32Array.of(h), members[0]!)
  index.record(Uint32Array.of(100), members[0]!)
  assert.equal(index.size, 8)
  assert.equal(index.match(Uint32Array.of(1), members), 0, 'the oldest block was forgotten')
  assert.equal(index.match(Uint32Array.of(2), members), 1)
  for (let h = 1000; h < 21000; h++) index.record(Uint32Array.of(h), members[0]!)
  assert.equal(index.size, 8)
})

test('index: a member array from a DNS change is matched by its own positions', () => {
  const [a, b, c] = makeMembers(3)
  const index = new PrefixIndex(100, 4)
  index.record(Uint32Array.of(5, 6), c!)
  index.match(Uint32Array.of(5, 6), [a!, b!, c!])
  assert.equal(index.matched[2], 2)
  index.match(Uint32Array.of(5, 6), [c!, a!])
  assert.equal(index.matched[0], 2)
})

test('index: shared depth is where recorded prompts part; a conversation\'s own history past it is private', () => {
  const [a, b] = makeMembers(2)
  const index = new PrefixIndex(1000, 8)
  // System prompt 1-2-3, then two conversations: 4-5 (on a) and 6 (on b).
  index.record(Uint32Array.of(1, 2, 3, 4, 5), a!)
  index.match(Uint32Array.of(1, 2, 3, 4, 5, 7), [a!, b!])
  assert.equal(index.sharedDepth, 0, 'one conversation so far: nothing is known to be shared')
  index.record(Uint32Array.of(1, 2, 3, 6), b!)
  // Its next turn extends the chain: 1-2-3 are shared (prompts part after 3), 4-5 are its own.
  assert.equal(index.match(Uint32Array.of(1, 2, 3, 4, 5, 7, 8), [a!, b!]), 5)
  assert.equal(index.sharedDepth, 3)
  // The same conversation again, turn after turn, never parts from itself.
  index.record(Uint32Array.of(1, 2, 3, 4, 5, 7, 8), a!)
  index.match(Uint32Array.of(1, 2, 3, 4, 5, 7, 8, 9), [a!, b!])
  assert.equal(index.sharedDepth, 3)
  // A prompt recorded in full before (the same prompt sent again) is shared as a whole.
  index.match(Uint32Array.of(1, 2, 3, 4, 5), [a!, b!])
  assert.equal(index.sharedDepth, 5)
})
