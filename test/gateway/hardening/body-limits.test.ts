/**
 * Bodies a hostile client can shape: nesting depth and model-name size are bounded where the body
 * is parsed, so no later walk (cache key, alias rewrite) can overflow the stack or grow state.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { MAX_JSON_DEPTH, MAX_MODEL_LENGTH, nestingExceeds } from '../../../gateway/src/proxy/request-body.ts'
import { startSimulator, type Simulator } from '../../../gateway/src/simulator/server.ts'
import { post, startGateway, type TestGateway } from '../../helpers/gateway.ts'

let sim: Simulator
let gw: TestGateway

before(async () => {
  sim = await startSimulator({ tokens: 3 })
  // The exact cache is on: its canonical walk is what overflowed on deep bodies.
  gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'], pool: { warm: 1 } }], routing: { health: { intervalMs: 0 } }, cache: { enabled: true } })
})

after(async () => {
  await gw.close()
  await sim.close()
})

/** A chat body whose `extra` field nests arrays so the whole body is `depth` levels deep. */
function nested(depth: number): string {
  const inner = depth - 1 // the body object itself is the first level
  return `{"model":"m","messages":[{"role":"user","content":"hi"}],"extra":${'['.repeat(inner)}${']'.repeat(inner)}}`
}

test('nestingExceeds counts brackets outside strings only', () => {
  assert.equal(nestingExceeds(Buffer.from('[[[]]]'), 3), false)
  assert.equal(nestingExceeds(Buffer.from('[[[[]]]]'), 3), true)
  assert.equal(nestingExceeds(Buffer.from('{"a":"[[[[[[","b":{"c":[]}}'), 3), false)
  // Escaped quotes do not end a string; an escaped backslash before a quote does.
  assert.equal(nestingExceeds(Buffer.from('["\\"[[[[[[", []]'), 2), false)
  assert.equal(nestingExceeds(Buffer.from('["\\\\",[[[]]]]'), 3), true)
  assert.equal(nestingExceeds(Buffer.from('"unterminated [[[[['), 1), false)
})

test(`a body nested ${MAX_JSON_DEPTH} levels deep is served; one level more is a 400, not a 500`, async () => {
  const ok = await post(`${gw.url}/v1/chat/completions`, nested(MAX_JSON_DEPTH))
  assert.equal(ok.status, 200, await ok.clone().text())
  await ok.arrayBuffer()
  for (const body of [nested(MAX_JSON_DEPTH + 1), nested(20_000), `{"model":"m","x":${'{"a":'.repeat(30_000)}1${'}'.repeat(30_000)}}`]) {
    const res = await post(`${gw.url}/v1/chat/completions`, body)
    assert.equal(res.status, 400)
    const err = ((await res.json()) as { error: { code: string; message: string } }).error
    assert.equal(err.code, 'GW_ERR_INVALID_BODY')
    assert.match(err.message, /nested deeper/)
  }
})

test(`a model name longer than ${MAX_MODEL_LENGTH} characters is a 400 naming the field`, async () => {
  const ok = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm'.repeat(MAX_MODEL_LENGTH), messages: [{ role: 'user', content: 'hi' }] }))
  assert.equal(ok.status, 200)
  await ok.arrayBuffer()
  const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'm'.repeat(100_000), messages: [] }))
  assert.equal(res.status, 400)
  const err = ((await res.json()) as { error: { code: string; param: string } }).error
  assert.deepEqual([err.code, err.param], ['GW_ERR_INVALID_BODY', 'model'])
})
