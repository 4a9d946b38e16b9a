import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { PEER_API_KEY_ENV, PEER_KEY_NAME, REDIS_PASSWORD_ENV, renderGatewayConfig, type GatewayConfigInputs } from '../../infra/lib/gateway-config.ts'
import { inferenceUrl } from '../../infra/lib/manifests.ts'

const inputs = (over: Partial<GatewayConfigInputs> = {}): GatewayConfigInputs => ({
  inferenceUrl: inferenceUrl(),
  model: 'meta-llama/Llama-3.1-8B-Instruct',
  cache: { host: 'master.velox.abc.use1.cache.amazonaws.com', port: 6379, tls: true, authToken: false },
  pool: { connections: 64, warm: 8, keepAliveTimeoutMs: 4000, maxConnectionAgeMs: 300000 },
  timeouts: { connectMs: 2000, firstByteMs: 60000, idleMs: 60000, totalMs: 600000 },
  fallbackUpstreams: [],
  workers: 0,
  logLevel: 'info',
  redisCommandTimeoutMs: 50,
  loadBalancerIdleTimeoutSeconds: 350,
  stage: 'staging',
  apiKeys: [{ name: 'team-a', tenant: 'a', hash: `sha256:${'a'.repeat(64)}` }],
  cacheMaxBytes: 64 * 1024 * 1024,
  shutdownTimeoutMs: 120_000,
  ...over,
})

test('the rendered YAML is accepted by the gateway schema as written', () => {
  const r = renderGatewayConfig(inputs())
  const reparsed = GatewayConfigSchema.parse(parse(r.yaml))
  assert.deepEqual(reparsed, r.config)
  assert.equal(r.config.upstreams[0]!.url, 'http://vllm.velox.svc.cluster.local:8000')
  assert.deepEqual(r.config.upstreams[0]!.models, ['meta-llama/Llama-3.1-8B-Instruct'])
  assert.equal(r.config.upstreams[0]!.pool.connections, 64)
  assert.equal(r.config.simulator.enabled, false)
  assert.ok(r.config.server.keepAliveTimeoutMs > 350_000, 'client keep-alive outlives the NLB idle timeout')
})

test('cache endpoint: rediss:// with TLS, passwordEnv only with an AUTH token', () => {
  const tls = renderGatewayConfig(inputs())
  assert.equal(tls.config.redis.url, 'rediss://master.velox.abc.use1.cache.amazonaws.com:6379')
  assert.equal(tls.config.redis.passwordEnv, undefined)
  const auth = renderGatewayConfig(inputs({ cache: { host: 'h.example', port: 6380, tls: true, authToken: true } }))
  assert.equal(auth.config.redis.passwordEnv, REDIS_PASSWORD_ENV)
  assert.ok(!auth.yaml.includes('password:'), 'no secret in the file')
  assert.equal(renderGatewayConfig(inputs({ cache: { host: 'h', port: 6379, tls: false, authToken: false } })).config.redis.url, 'redis://h:6379')
})

test('fallback regions become a higher priority tier for the same model', () => {
  const r = renderGatewayConfig(inputs({ fallbackUpstreams: ['https://eu-west-1.api.example.com', 'https://ap-northeast-1.api.example.com'] }))
  assert.equal(r.config.upstreams.length, 3)
  const [local, ...fallbacks] = r.config.upstreams
  assert.equal(local!.priority, 0)
  for (const f of fallbacks) {
    assert.equal(f.priority, 1)
    assert.deepEqual(f.models, local!.models)
    assert.ok(f.pool.warm <= f.pool.connections)
  }
  assert.equal(new Set(r.config.upstreams.map((u) => u.name)).size, 3)
})

test('any config change changes the hash (it rolls the gateway); same input, same hash', () => {
  const a = renderGatewayConfig(inputs())
  assert.equal(renderGatewayConfig(inputs()).hash, a.hash)
  assert.match(a.hash, /^[0-9a-f]{64}$/)
  assert.notEqual(renderGatewayConfig(inputs({ pool: { ...inputs().pool, connections: 65 } })).hash, a.hash)
  assert.notEqual(renderGatewayConfig(inputs({ timeouts: { ...inputs().timeouts, firstByteMs: 30000 } })).hash, a.hash)
})

test('a config the gateway would refuse is refused here, naming the path', () => {
  assert.throws(() => renderGatewayConfig(inputs({ pool: { connections: 2, warm: 8, keepAliveTimeoutMs: 4000, maxConnectionAgeMs: 0 } })), /upstreams\.0\.pool\.warm: warm \(8\) exceeds connections \(2\)/)
  assert.throws(() => renderGatewayConfig(inputs({ inferenceUrl: 'ftp://vllm:8000' })), /upstreams\.0\.url/)
})

test('auth: every stage but dev refuses to render without client keys; keys render as hashes', () => {
  assert.throws(() => renderGatewayConfig(inputs({ apiKeys: [] })), /stage staging serves the internet and needs client API keys/)
  assert.deepEqual(renderGatewayConfig(inputs({ stage: 'dev', apiKeys: [] })).config.auth.keys, [])
  const r = renderGatewayConfig(inputs())
  assert.deepEqual(r.config.auth.keys.map((k) => [k.name, k.tenant, k.hash, k.models]), [['team-a', 'a', `sha256:${'a'.repeat(64)}`, ['*']]])
})

test('key rotation does not roll the pods: the hash leaves auth out, the YAML carries it', () => {
  const a = renderGatewayConfig(inputs())
  const b = renderGatewayConfig(inputs({ apiKeys: [{ name: 'team-b', tenant: 'b', hash: `sha256:${'b'.repeat(64)}` }] }))
  assert.equal(a.hash, b.hash)
  assert.notEqual(a.yaml, b.yaml)
  assert.ok(b.yaml.includes('team-b'))
})

test('peer regions authenticate with the stage peer key: sent on fallback calls, accepted from peers', () => {
  const peerKeyHash = `sha256:${'c'.repeat(64)}`
  const r = renderGatewayConfig(inputs({ fallbackUpstreams: ['https://eu-west-1.api.example.com'], peerKeyHash }))
  const [local, peer] = r.config.upstreams
  assert.equal(local!.apiKeyEnv, undefined, 'vLLM gets no key')
  assert.equal(peer!.apiKeyEnv, PEER_API_KEY_ENV)
  assert.equal(peer!.peer, true)
  assert.ok(r.config.auth.keys.some((k) => k.name === PEER_KEY_NAME && k.hash === peerKeyHash))
  const none = renderGatewayConfig(inputs({ fallbackUpstreams: ['https://eu-west-1.api.example.com'] }))
  assert.equal(none.config.upstreams[1]!.apiKeyEnv, undefined)
})

test('the shared cache tier is Valkey; memory is a sized L1; the drain is the stack\'s', () => {
  const r = renderGatewayConfig(inputs())
  assert.equal(r.config.cache.backend, 'redis')
  assert.equal(r.config.cache.maxBytes, 64 * 1024 * 1024)
  assert.equal(r.config.server.shutdownTimeoutMs, 120_000)
  assert.match(r.config.redis.url!, /^rediss:\/\//)
})

test('limits from stack config are rendered onto the shared Valkey; key expiry and priority pass through', () => {
  const limits = { rules: [{ name: 'acme', match: { tenant: 'a' }, requestsPerMinute: 600, tokensPerDay: 5_000_000 }], prices: { 'meta-llama/*': { inputPerMillion: 0.1, outputPerMillion: 0.4 } } }
  const r = renderGatewayConfig(inputs({ limits, apiKeys: [{ name: 'team-a', tenant: 'a', hash: `sha256:${'a'.repeat(64)}`, expiresAt: '2027-01-01T00:00:00Z', priority: 'high' }] }))
  assert.equal(r.config.limits.backend, 'redis', 'counts are shared by every gateway pod of the region')
  assert.equal(r.config.limits.rules[0]!.requestsPerMinute, 600)
  assert.equal(r.config.auth.keys[0]!.priority, 'high')
  assert.equal(r.config.auth.keys[0]!.expiresAt, '2027-01-01T00:00:00Z')
  assert.deepEqual(GatewayConfigSchema.parse(parse(r.yaml)).limits, r.config.limits)
  assert.equal(renderGatewayConfig(inputs()).config.limits.rules.length, 0, 'no rules: no limits section')
})
