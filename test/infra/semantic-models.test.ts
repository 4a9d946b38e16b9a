/**
 * The semantic cache's models in the cluster (velox:semanticCache): an embedding model and a
 * reranker served by vLLM on their own GPU nodes, sized and probed like the inference Deployment,
 * and the rendered gateway config pointing the semantic tier at them; on the program under mocks,
 * schema-validated, and the gateway's own embedder and verifier built from the rendered config
 * calling a local server on the paths vLLM serves.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { parse } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { OpenAIEmbedder } from '../../gateway/src/cache/semantic/openai-embedder.ts'
import { RerankVerifier } from '../../gateway/src/cache/semantic/rerank-verifier.ts'
import { SEMANTIC_NODE_LABEL } from '../../infra/components/inference-nodes.ts'
import { semanticModelDeployment, VLLM_PORT, type VllmSpec } from '../../infra/lib/manifests.ts'
import { vllmSizing } from '../../infra/lib/sizing.ts'
import { manifestsOf } from '../../infra/tools/render-manifests.ts'
import { checkResource } from '../../infra/policy/policies.ts'
import { schemaProblems, type K8sObject } from './helpers/k8s-schema.ts'
import { ofType, one, runStack } from './helpers/run-stack.ts'

const ON = 'velox:semanticCache={"enabled":true,"embedding":{"model":"BAAI/bge-small-en-v1.5"},"reranker":{"replicas":2,"minScore":0.7}}'

function renderedConfig(r: Awaited<ReturnType<typeof runStack>>) {
  return GatewayConfigSchema.parse(parse(one(r, 'kubernetes:core/v1:ConfigMap', 'gateway-config').inputs['data']['gateway.yaml']))
}

const servers: http.Server[] = []
after(() => { for (const s of servers) s.close() })

test('with semantic caching on: a GPU node per model replica, labelled apart from the inference nodes', async () => {
  const r = await runStack('dev-us-east-1', ON)
  assert.equal(r.error, null)
  const groups = ofType(r, 'aws:eks/nodeGroup:NodeGroup').filter((g) => g.inputs['labels']['velox.dev/role'] === 'semantic')
  assert.ok(groups.length >= 2, 'one node group per AZ')
  assert.equal(groups.reduce((n, g) => n + g.inputs['scalingConfig'].desiredSize, 0), 1 + 2, 'embedding 1 + reranker 2 replicas')
  for (const g of groups) {
    assert.deepEqual(g.inputs['instanceTypes'], ['g6.xlarge'])
    assert.ok(g.inputs['taints'].some((t: any) => t.key === 'nvidia.com/gpu'), 'GPU taint: nothing else lands there')
  }
  // The device plugin advertises the GPUs on both node groups.
  const plugin = one(r, 'kubernetes:apps/v1:DaemonSet').inputs['spec'].template.spec
  const roles = plugin.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.map((t: any) => t.matchExpressions[0].values[0])
  assert.deepEqual(roles.sort(), ['inference', 'semantic'])
})

test('the models: vLLM pooling runner, one GPU, probed and rolled out like the inference Deployment, behind headless Services', async () => {
  const r = await runStack('dev-us-east-1', ON)
  const inference = one(r, 'kubernetes:apps/v1:Deployment', 'apps-vllm').inputs['spec']
  for (const [role, model, replicas] of [['embedding', 'BAAI/bge-small-en-v1.5', 1], ['reranker', 'BAAI/bge-reranker-v2-m3', 2]] as const) {
    const d = one(r, 'kubernetes:apps/v1:Deployment', `apps-${role}`).inputs
    const pod = d['spec'].template.spec
    const c = pod.containers[0]
    assert.equal(d['metadata'].name, `vllm-${role}`)
    assert.equal(d['spec'].replicas, replicas)
    assert.deepEqual(c.command, ['vllm', 'serve'])
    assert.equal(c.args[0], model)
    assert.deepEqual(c.args.slice(c.args.indexOf('--runner'), c.args.indexOf('--runner') + 2), ['--runner', 'pooling'])
    assert.equal(c.resources.limits['nvidia.com/gpu'], '1')
    assert.deepEqual(pod.nodeSelector, { ...SEMANTIC_NODE_LABEL })
    // Same probes, deadlines and drain as the inference Deployment.
    for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) assert.deepEqual(c[p], inference.template.spec.containers[0][p], `${role} ${p}`)
    assert.equal(d['spec'].progressDeadlineSeconds, inference.progressDeadlineSeconds)
    assert.equal(pod.terminationGracePeriodSeconds, inference.template.spec.terminationGracePeriodSeconds)
    const svc = one(r, 'kubernetes:core/v1:Service', `apps-${role}`).inputs
    assert.equal(svc['spec'].clusterIP, 'None')
    assert.deepEqual(svc['spec'].selector, d['spec'].selector.matchLabels)
    assert.equal(one(r, 'kubernetes:policy/v1:PodDisruptionBudget', `apps-${role}`).inputs['spec'].maxUnavailable, 1)
  }
  const spec: VllmSpec = { image: 'i', model: 'm', replicas: 1, gpus: 4, extraArgs: [], nodeSelector: {}, gpuTaint: { key: 'k', value: 'v' }, resources: vllmSizing('g6e.12xlarge'), startupSeconds: 600, hfToken: false, drainSeconds: 30 }
  assert.throws(() => semanticModelDeployment('embedding', spec), /one GPU per replica/)
  const objects = (manifestsOf(r.resources) as unknown as K8sObject[]).filter((o) => o.apiVersion !== 'helm.sh/v3')
  assert.deepEqual(await schemaProblems(objects), [])
  for (const res of r.resources) assert.deepEqual(checkResource({ type: res.type, props: res.inputs, urn: `urn:pulumi:dev-us-east-1::velox::${res.type}::${res.name}`, name: res.name }), [], res.name)
})

test('the rendered gateway config turns semantic lookups on and points them at the two Services', async () => {
  const r = await runStack('dev-us-east-1', ON)
  const semantic = renderedConfig(r).cache.semantic
  assert.equal(semantic.enabled, true)
  assert.equal(semantic.embedder.kind, 'openai')
  assert.equal(semantic.verifier.kind, 'rerank')
  if (semantic.embedder.kind !== 'openai' || semantic.verifier.kind !== 'rerank') return
  assert.equal(semantic.embedder.model, 'BAAI/bge-small-en-v1.5')
  assert.equal(semantic.embedder.version, 'BAAI/bge-small-en-v1.5', 'a new model starts new partitions')
  assert.equal(semantic.verifier.model, 'BAAI/bge-reranker-v2-m3')
  assert.equal(semantic.verifier.minScore, 0.7)
  assert.equal(semantic.verifier.fallback, 'lexical')
  // Each URL names its Service in the namespace, on the Service's port.
  for (const [role, url] of [['embedding', semantic.embedder.url], ['reranker', semantic.verifier.url]] as const) {
    const svc = one(r, 'kubernetes:core/v1:Service', `apps-${role}`).inputs
    const u = new URL(url)
    assert.equal(u.hostname, `${svc['metadata'].name}.${svc['metadata'].namespace}.svc.cluster.local`)
    assert.equal(Number(u.port), svc['spec'].ports[0].port)
    assert.equal(Number(u.port), VLLM_PORT)
  }
})

test('the gateway\'s embedder and verifier, built from the rendered config, call /v1/embeddings and /v1/rerank', async () => {
  const r = await runStack('dev-us-east-1', ON)
  const semantic = renderedConfig(r).cache.semantic
  if (semantic.embedder.kind !== 'openai' || semantic.verifier.kind !== 'rerank') throw new Error('semantic models not rendered')
  const seen: { path: string; model: unknown }[] = []
  // A local server answering as vLLM does on those paths (OpenAI embeddings; Jina/Cohere rerank).
  const server = http.createServer(async (req, res) => {
    let text = ''
    for await (const chunk of req) text += chunk
    const body = JSON.parse(text) as { model: string; documents?: string[] }
    seen.push({ path: req.url ?? '', model: body.model })
    res.setHeader('content-type', 'application/json')
    if (req.url === '/v1/embeddings') res.end(JSON.stringify({ object: 'list', data: [{ object: 'embedding', index: 0, embedding: [0.6, 0.8] }], model: body.model }))
    else if (req.url === '/v1/rerank') res.end(JSON.stringify({ id: 'rerank-1', model: body.model, results: (body.documents ?? []).map((_, index) => ({ index, relevance_score: index === 0 ? 0.93 : 0.2 })).reverse() }))
    else res.writeHead(404).end('{}')
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const local = (url: string) => { const u = new URL(url); u.host = `127.0.0.1:${(server.address() as AddressInfo).port}`; return u.toString() }
  // Generous timeouts: this checks paths and payloads, not speed, on a machine that may be busy.
  const embedder = new OpenAIEmbedder({ ...semantic.embedder, url: local(semantic.embedder.url), timeoutMs: 30_000 })
  const verifier = new RerankVerifier({ ...semantic.verifier, url: local(semantic.verifier.url), timeoutMs: 30_000 }, null)
  try {
    const v = await embedder.embed('What is the capital of France?')
    assert.deepEqual([...v].map((x) => Math.round(x * 10) / 10), [0.6, 0.8])
    assert.deepEqual(await verifier.verify('What is the capital of France?', ['Which city is the capital of France?', 'What is the capital of Spain?']), [true, false])
  } finally {
    await embedder.close()
    await verifier.close()
  }
  assert.deepEqual(seen, [{ path: '/v1/embeddings', model: 'BAAI/bge-small-en-v1.5' }, { path: '/v1/rerank', model: 'BAAI/bge-reranker-v2-m3' }])
})

test('semantic caching off (the default): no semantic nodes or models, and the rendered config leaves it off', async () => {
  const r = await runStack('dev-us-east-1')
  assert.equal(r.error, null)
  assert.equal(ofType(r, 'aws:eks/nodeGroup:NodeGroup').filter((g) => g.inputs['labels']['velox.dev/role'] === 'semantic').length, 0)
  assert.equal(ofType(r, 'kubernetes:apps/v1:Deployment').length, 2, 'vLLM and the gateway only')
  assert.equal(renderedConfig(r).cache.semantic.enabled, false)
  assert.ok(one(r, 'kubernetes:apps/v1:DaemonSet').inputs['spec'].template.spec.nodeSelector, 'the device plugin keeps its node selector')
})
