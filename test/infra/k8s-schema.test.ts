/**
 * Every Kubernetes object the program applies, validated against the Kubernetes OpenAPI schema
 * (helpers/k8s-schema.ts: 1.33.0 and 1.36.0, bracketing the clusters' 1.35).
 *
 * The shipped stacks' objects are read from test/infra/golden/, which manifests-golden.test.ts
 * keeps equal to what the program renders; a variant with every optional object switched on
 * (cache AUTH token, Hugging Face token) is rendered here under mocks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { REPO_ROOT, shippedStacks } from '../../infra/tools/stack-files.ts'
import { manifestsOf } from '../../infra/tools/render-manifests.ts'
import { schemaProblems, type K8sObject } from './helpers/k8s-schema.ts'
import { runStack } from './helpers/run-stack.ts'

/** Helm releases are Pulumi resources, not Kubernetes objects: their charts render in the cluster. */
const isRelease = (o: K8sObject) => o.apiVersion === 'helm.sh/v3'

function golden(stack: string): K8sObject[] {
  const text = readFileSync(join(REPO_ROOT, 'test', 'infra', 'golden', `${stack}.yaml`), 'utf8')
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter((o) => !isRelease(o))
}

const stacks = shippedStacks()

test('every object of every shipped stack is valid against the Kubernetes OpenAPI schema', async () => {
  const objects = stacks.flatMap(golden)
  assert.ok(objects.length >= stacks.length * 9)
  assert.deepEqual(await schemaProblems(objects), [])
})

test('with every optional object on (secrets), the objects are still valid', async () => {
  const run = await runStack('prod-eu-west-1', 'velox:cacheAuthToken=abcdefghijklmnop0123')
  assert.equal(run.error, null)
  const objects = (manifestsOf(run.resources) as unknown as K8sObject[]).filter((o) => !isRelease(o))
  assert.ok(objects.some((o) => o.kind === 'Secret'))
  assert.deepEqual(await schemaProblems(objects), [])
})

test('the validator refuses what the API server refuses: bad quantities, missing fields, unknown fields, unknown kinds', async () => {
  const [deployment] = golden('dev-us-east-1').filter((o) => o.kind === 'Deployment')
  const broken = structuredClone(deployment!) as any
  broken.spec.template.spec.containers[0].resources.requests.cpu = '1 core'
  broken.spec.progressDeadlineSecond = 1200
  delete broken.spec.selector
  const problems = await schemaProblems([broken, { apiVersion: 'policy/v1beta1', kind: 'PodSecurityPolicy', metadata: { name: 'x' } }])
  const text = problems.join('\n')
  assert.match(text, /requests\/cpu must match format "quantity"/)
  assert.match(text, /data\/spec must have required property selector/)
  assert.match(text, /'"progressDeadlineSecond"' does not exist in type 'IDeploymentSpec'/)
  // Removed in 1.25; kubernetes-models still carries the old APIs, the served-versions list does not.
  assert.match(text, /policy\/v1beta1 PodSecurityPolicy x: policy\/v1beta1 is not served by Kubernetes 1\.35/)
})
