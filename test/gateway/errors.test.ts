import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { ERRORS, GatewayError } from '../../gateway/src/errors.ts'

const docs = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8')

test('every error code is documented with its status, and docs name no unknown code', () => {
  for (const def of Object.values(ERRORS)) {
    const row = docs.split('\n').find((l) => l.startsWith(`| \`${def.code}\``))
    assert.ok(row, `${def.code} missing from docs/errors.md`)
    assert.match(row, new RegExp(`\\| ${def.status} \\|`), `${def.code} documented with the wrong status`)
  }
  const documented = [...docs.matchAll(/^\| `(GW_ERR_[A-Z_]+)`/gm)].map((m) => m[1])
  for (const code of documented) assert.ok(code! in ERRORS, `docs/errors.md documents unknown ${code}`)
})

test('error bodies are OpenAI-shaped', () => {
  const err = new GatewayError('GW_ERR_MODEL_NOT_FOUND', 'gpt-x', { param: 'model' })
  assert.deepEqual(JSON.parse(err.body()), {
    error: { message: 'The model "gpt-x" does not exist or is not served by this gateway', type: 'not_found_error', param: 'model', code: 'GW_ERR_MODEL_NOT_FOUND' },
  })
  assert.equal(err.status, 404)
})
