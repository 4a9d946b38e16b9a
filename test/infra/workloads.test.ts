/**
 * What the cluster runs: pod sizes derived from the instance types, rollout deadlines sized for
 * large models, drain timing, and the secrets (Hugging Face token, peer key) wired from secret
 * stack config, on the program run under mocks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parse } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { hashKey } from '../../gateway/src/auth/authenticator.ts'
import { GATEWAY_INSTANCE_TYPES, INFERENCE_INSTANCE_TYPES, instanceType } from '../../infra/lib/instance-types.ts'
import {
  GATEWAY_PRESTOP_SECONDS, gatewayAwaitTimeout, gatewayGracePeriodSeconds, vllmAwaitTimeout, vllmDeployment, vllmProgressDeadlineSeconds, type VllmSpec,
} from '../../infra/lib/manifests.ts'
import { PRIMARY_MIB, WORKER_BASE_MIB, gatewaySizing, memoryGiB, nodeReserved, vllmSizing } from '../../infra/lib/sizing.ts'
import { ofType, one, runStack } from './helpers/run-stack.ts'

const MiB = 1024 * 1024
const mebibytes = (q: string): number => q.endsWith('Gi') ? Number(q.slice(0, -2)) * 1024 : Number(q.slice(0, -2))
const millicores = (q: string): number => q.endsWith('m') ? Number(q.slice(0, -1)) : Number(q) * 1000

test('gateway sizing: workers from the CPUs, memory from the workers, and it fits the node', () => {
  for (const type of GATEWAY_INSTANCE_TYPES) {
    const info = instanceType(type)!
    const s = gatewaySizing(type)
    assert.ok(s.workers >= 1, type)
    assert.ok(s.workers < info.vcpus || info.vcpus === 1, `${type}: leaves CPU to the node`)
    const allocatable = memoryGiB(type) * 1024 - nodeReserved(info.vcpus, memoryGiB(type)).memMiB
    assert.ok(mebibytes(s.memory) <= allocatable, `${type}: ${s.memory} fits ${allocatable} MiB`)
    // Every worker gets its measured baseline plus its cache tier; the primary its own share.
    const floor = (s.workers > 1 ? PRIMARY_MIB : 0) + s.workers * (WORKER_BASE_MIB + s.cacheMaxBytes / MiB)
    assert.ok(s.memoryMiB > floor, `${type}: ${s.memoryMiB} MiB above ${floor}`)
    assert.ok(millicores(s.cpu) >= s.workers * 1000 || s.workers === 1, `${type}: a core per worker`)
  }
  // The prod default: 63 workers on 64 vCPUs, not "one per core" inside a 1 GiB limit.
  const prod = gatewaySizing('c7gn.16xlarge')
  assert.equal(prod.workers, 63)
  assert.ok(mebibytes(prod.memory) > 63 * WORKER_BASE_MIB)
  assert.equal(gatewaySizing('c7gn.16xlarge', 8).workers, 8, 'velox:gatewayWorkers pins the count')
  assert.throws(() => gatewaySizing('c7gn.large', 16), /16 gateway workers do not fit in c7gn.large/)
})

test('vLLM sizing: most of the GPU node requested, shared memory bounded', () => {
  for (const type of INFERENCE_INSTANCE_TYPES) {
    const v = vllmSizing(type)
    const info = instanceType(type)!
    assert.ok(millicores(v.cpu) < info.vcpus * 1000 && millicores(v.cpu) > info.vcpus * 500, `${type} cpu ${v.cpu}`)
    assert.ok(mebibytes(v.memory) < memoryGiB(type) * 1024 && mebibytes(v.memory) > memoryGiB(type) * 1024 * 0.6, `${type} memory ${v.memory}`)
    assert.ok(mebibytes(v.shm) >= 1024 && mebibytes(v.shm) <= 16 * 1024 && mebibytes(v.shm) < mebibytes(v.memory))
  }
})

const spec: VllmSpec = {
  image: 'vllm/vllm-openai:v0.11.0', model: 'meta-llama/Llama-3.1-70B-Instruct', replicas: 2, gpus: 4, extraArgs: ['--max-model-len', '16384'],
  nodeSelector: { 'velox.dev/role': 'inference' }, gpuTaint: { key: 'nvidia.com/gpu', value: 'present' },
  resources: vllmSizing('g6e.12xlarge'), startupSeconds: 2400, hfToken: true, drainSeconds: 300,
}

test('vLLM: `vllm serve MODEL`, requests and limits, probe timeouts, rollout deadlines past the model load', () => {
  const d = vllmDeployment(spec) as any
  const c = d.spec.template.spec.containers[0]
  assert.deepEqual(c.command, ['vllm', 'serve'])
  assert.equal(c.args[0], spec.model, 'model is the positional argument')
  assert.ok(!c.args.includes('--model'))
  assert.deepEqual(c.args.slice(-2), ['--max-model-len', '16384'])
  assert.equal(c.resources.requests.cpu, spec.resources.cpu)
  assert.equal(c.resources.requests.memory, c.resources.limits.memory)
  assert.equal(c.resources.limits['nvidia.com/gpu'], '4')
  const startup = c.startupProbe.periodSeconds * c.startupProbe.failureThreshold
  assert.ok(startup >= spec.startupSeconds, `startup probe allows ${startup} s`)
  for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) assert.ok(p.timeoutSeconds >= 5, 'probe timeout above the 1 s default')
  // Production vLLM charts allow 1200 s and more; this one allows the model's startup plus scheduling.
  assert.ok(d.spec.progressDeadlineSeconds > spec.startupSeconds && d.spec.progressDeadlineSeconds >= 1200)
  assert.equal(d.spec.progressDeadlineSeconds, vllmProgressDeadlineSeconds(spec))
  assert.ok(Number(vllmAwaitTimeout(spec).slice(0, -1)) * 60 > d.spec.progressDeadlineSeconds, 'Pulumi outwaits Kubernetes')
  assert.match(vllmAwaitTimeout(spec), /^\d+m$/)
  const volumes = Object.fromEntries(d.spec.template.spec.volumes.map((v: any) => [v.name, v]))
  assert.deepEqual(volumes.shm.emptyDir, { medium: 'Memory', sizeLimit: spec.resources.shm })
  assert.ok(volumes.models.hostPath)
  assert.ok(c.volumeMounts.some((m: any) => m.name === 'models' && m.mountPath === c.env.find((e: any) => e.name === 'HF_HOME').value))
  assert.deepEqual(c.env.find((e: any) => e.name === 'HF_TOKEN').valueFrom.secretKeyRef, { name: 'hf-token', key: 'token', optional: false })
  const noToken = (vllmDeployment({ ...spec, hfToken: false }) as any).spec.template.spec.containers[0]
  assert.equal(noToken.env.find((e: any) => e.name === 'HF_TOKEN').valueFrom.secretKeyRef.optional, true, 'public models need no token')
})

test('gateway drain: preStop, then the stack\'s drain, inside the grace period; Pulumi waits for one replacement', () => {
  assert.equal(gatewayGracePeriodSeconds({ drainSeconds: 300 }), GATEWAY_PRESTOP_SECONDS + 300 + 10)
  assert.ok(GATEWAY_PRESTOP_SECONDS >= 30, 'longer than target deregistration takes to reach every NLB node')
  assert.ok(Number(gatewayAwaitTimeout({ drainSeconds: 300 }).slice(0, -1)) * 60 >= 600 + gatewayGracePeriodSeconds({ drainSeconds: 300 }))
})

const SECRETS = ['velox:hfToken=hf_abcdefghijklmnopqrstuvwxyz', 'velox:peerApiKey=peer-key-0123456789abcdefghij']

test('prod stack: secrets become Secrets, pods read them, and the rendered config carries the sizes', async () => {
  const run = await runStack('prod-us-east-1', ...SECRETS)
  assert.equal(run.error, null)
  const secrets = Object.fromEntries(ofType(run, 'kubernetes:core/v1:Secret').map((s) => [s.inputs['metadata'].name, s.inputs['stringData']]))
  const SIG = '4dabf18193072939515e22adb298388d'
  assert.equal(secrets['hf-token']?.[SIG], '1b47061264138c4ac30d75fd1eb44270', 'stored as a secret')
  assert.deepEqual(secrets['hf-token'].value, { token: 'hf_abcdefghijklmnopqrstuvwxyz' })
  assert.deepEqual(secrets['gateway-peer'].value, { apiKey: 'peer-key-0123456789abcdefghij' })

  const gw = one(run, 'kubernetes:apps/v1:Deployment', '-gateway').inputs['spec']['template']['spec']
  const env = gw.containers[0].env
  assert.deepEqual(env.find((e: any) => e.name === 'VELOX_PEER_API_KEY').valueFrom.secretKeyRef, { name: 'gateway-peer', key: 'apiKey' })
  const size = gatewaySizing('c7gn.16xlarge')
  assert.deepEqual(gw.containers[0].resources, { requests: { cpu: size.cpu, memory: size.memory }, limits: { memory: size.memory } })
  assert.equal(gw.terminationGracePeriodSeconds, gatewayGracePeriodSeconds({ drainSeconds: 300 }))

  const cm = one(run, 'kubernetes:core/v1:ConfigMap', 'gateway-config').inputs['data']
  const yaml = cm[SIG] ? cm.value['gateway.yaml'] : cm['gateway.yaml']
  const config = GatewayConfigSchema.parse(parse(yaml))
  assert.equal(config.server.workers, size.workers)
  assert.equal(config.server.shutdownTimeoutMs, 300_000)
  assert.equal(config.cache.backend, 'redis')
  assert.equal(config.cache.maxBytes, size.cacheMaxBytes)
  assert.ok(config.auth.keys.some((k) => k.name === 'velox-peer' && k.hash === hashKey('peer-key-0123456789abcdefghij')))
  assert.ok(!yaml.includes('peer-key-0123456789abcdefghij'), 'only the hash is rendered')
  assert.equal(config.upstreams.find((u) => u.peer)!.apiKeyEnv, 'VELOX_PEER_API_KEY')

  const vllm = one(run, 'kubernetes:apps/v1:Deployment', '-vllm').inputs['spec']
  assert.equal(vllm.progressDeadlineSeconds, 2400 + 600)
  assert.equal(vllm.template.spec.containers[0].env.find((e: any) => e.name === 'HF_TOKEN').valueFrom.secretKeyRef.optional, false)
  assert.equal(ofType(run, 'kubernetes:policy/v1:PodDisruptionBudget').length, 2, 'gateway and vLLM')
})

test('a non-dev stack without client API keys is refused before anything is declared', async () => {
  const run = await runStack('staging-us-east-1', '-velox:apiKeys')
  assert.match(run.error ?? '', /velox:apiKeys: staging serves the internet and needs at least one client API key/)
  assert.equal(run.resources.filter((r) => r.custom).length, 0)
})
