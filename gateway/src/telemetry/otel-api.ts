/**
 * `@opentelemetry/api`, the one copy of it in the process. The package has a CommonJS build (what
 * `require` gets) and an ES module build (what `import` gets), and prom-client's default metrics
 * `require` it even with tracing off: an `import` here would load the package a second time
 * (about 50 more modules held for the life of the process). Taken with `require`, the gateway and
 * prom-client share the CommonJS one. Types are imported from the package as usual.
 *
 * The trace SDK's packages (loaded by sdk.ts only when tracing is on) import the ES module build;
 * the two copies share the API's global registrations and context keys, which the API keeps
 * process-wide for this case (Symbol.for keys).
 */
import { createRequire } from 'node:module'

export const otel = createRequire(import.meta.url)('@opentelemetry/api') as typeof import('@opentelemetry/api')
