import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readUsage } from '../../gateway/src/telemetry/usage.ts'

const b = (s: string) => Buffer.from(s)

test('usage is read from a JSON body, a stream’s last events, and a block split across chunks', () => {
  assert.deepEqual(readUsage(b('{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34,"total_tokens":46}}')), { prompt: 12, completion: 34 })
  assert.deepEqual(readUsage(b('data: [DONE]\n\n'), b('data: {"choices":[],"usage":{"prompt_tokens":5, "completion_tokens": 7}}\n\n')), { prompt: 5, completion: 7 })
  const event = 'data: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":21}}\n\ndata: [DONE]\n\n'
  assert.deepEqual(readUsage(b(event.slice(40)), b(event.slice(0, 40))), { prompt: 8, completion: 21 })
  assert.deepEqual(readUsage(b('{"usage":{"input_tokens":3,"output_tokens":4}}')), { prompt: 3, completion: 4 })
})

test('no usage block, or no token counts in it, reads as null', () => {
  assert.equal(readUsage(null), null)
  assert.equal(readUsage(b('data: [DONE]\n\n'), b('data: {"choices":[{"delta":{"content":"hi"}}]}\n\n')), null)
  assert.equal(readUsage(b('{"usage":null}')), null)
})
