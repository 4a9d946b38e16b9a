/**
 * fastify's validator and serializer compilers are required on first use (runtime/schema-compilers.ts):
 * a route with a schema still validates its input and serializes its output as fastify's defaults do.
 * That nothing loads them at boot is checked by boot-modules.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import { lazySchemaController } from '../../gateway/src/runtime/schema-compilers.ts'

test('a route with body, querystring and response schemas behaves as with fastify\'s own compilers', async () => {
  for (const schemaController of [lazySchemaController(), undefined]) {
    const app = Fastify(schemaController === undefined ? {} : { schemaController })
    app.post('/echo', {
      schema: {
        body: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
        querystring: { type: 'object', properties: { twice: { type: 'boolean' } } },
        response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } },
      },
    }, async (request) => {
      const { n } = request.body as { n: number }
      const { twice } = request.query as { twice?: boolean }
      return { n: twice === true ? n * 2 : n, secret: 'not in the response schema' }
    })
    const ok = await app.inject({ method: 'POST', url: '/echo?twice=true', payload: { n: '21' } })
    assert.equal(ok.statusCode, 200)
    assert.deepEqual(ok.json(), { n: 42 }, 'coerced by ajv, serialized by fast-json-stringify (extra fields dropped)')
    const bad = await app.inject({ method: 'POST', url: '/echo', payload: { m: 1 } })
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().code, 'FST_ERR_VALIDATION')
    assert.match(bad.json().message, /must have required property 'n'/)
    await app.close()
  }
})

test('each fastify instance gets its own compilers, built once', async () => {
  const a = lazySchemaController().compilersFactory
  const b = lazySchemaController().compilersFactory
  assert.notEqual(a.buildValidator, b.buildValidator)
  const schema = { type: 'object', properties: { x: { type: 'string' } } }
  const build = a.buildValidator as unknown as (external: unknown, options: unknown) => (route: unknown) => (data: unknown) => boolean
  const compile = build({}, { customOptions: {} })
  assert.equal(build({}, { customOptions: {} }), compile, 'the same options reuse one ajv instance, as fastify\'s pool does')
  const validate = compile({ schema, method: 'POST', url: '/', httpPart: 'body' })
  assert.equal(validate({ x: 'y' }), true)
  assert.equal(validate({ x: 1 }), true, 'coerced to a string, as fastify configures ajv')
})
