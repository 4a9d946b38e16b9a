/**
 * fastify's schema compilers, loaded by the first route that has a schema instead of at boot
 * (docs/benchmarks.md, "Idle memory"). fastify requires its default validator (ajv, through
 * `@fastify/ajv-compiler`) and serializer (`fast-json-stringify`) factories when an instance is
 * created, whether or not a route ever has a schema: about 110 files (ajv, ajv-formats, fast-uri,
 * fast-json-stringify, json-schema-merge) that the gateway's routes, which have none, never use.
 *
 * The factories given here are those same defaults, required from fastify's own location on the
 * first call and created once per fastify instance, as fastify does. One difference, for a route
 * that ever declares a `headers` schema: fastify treats factories passed in as custom and then
 * compiles a headers schema as written, so its property names must be lower case (fastify
 * lower-cases them itself for its built-in ajv).
 */
import { createRequire } from 'node:module'
import type { FastifyServerOptions } from 'fastify'

type Factories = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>
type ValidatorFactory = NonNullable<Factories['buildValidator']>
type SerializerFactory = NonNullable<Factories['buildSerializer']>

/** `require` as seen from fastify, which depends on both compiler packages. */
const fromFastify = (): NodeJS.Require => {
  const here = createRequire(import.meta.url)
  return createRequire(here.resolve('fastify'))
}

/** The `schemaController` option for one fastify instance. */
export function lazySchemaController(): { compilersFactory: Factories } {
  let validator: ((externalSchemas: unknown, options: unknown) => unknown) | null = null
  let serializer: SerializerFactory | null = null
  const buildValidator = ((externalSchemas: unknown, options: unknown) => {
    validator ??= (fromFastify()('@fastify/ajv-compiler') as () => (e: unknown, o: unknown) => unknown)()
    return validator(externalSchemas, options)
  }) as ValidatorFactory
  const buildSerializer: SerializerFactory = (externalSchemas, options) => {
    serializer ??= (fromFastify()('@fastify/fast-json-stringify-compiler') as () => SerializerFactory)()
    return serializer(externalSchemas, options)
  }
  return { compilersFactory: { buildValidator, buildSerializer } }
}
