/**
 * Golden files for the Kubernetes manifests each shipped stack applies, rendered offline by
 * infra/tools/render-manifests.ts. Review the diff, then refresh with
 *   UPDATE_GOLDEN=1 node --test test/infra/manifests-golden.test.ts
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { renderManifests } from '../../infra/tools/render-manifests.ts'
import { REPO_ROOT, shippedStacks } from '../../infra/tools/stack-files.ts'
import { runStack } from './helpers/run-stack.ts'

const GOLDEN = join(REPO_ROOT, 'test/infra/golden')
const update = process.env['UPDATE_GOLDEN'] === '1'

const stacks = shippedStacks()
// Start every run now (the helper keeps two in flight); program.test.ts runs the same stacks
// with the same arguments, so within one `node --test` run each stack's program runs once.
for (const s of stacks) void runStack(s).catch(() => {})

for (const stack of stacks) {
  test(`${stack}: manifests match test/infra/golden/${stack}.yaml`, async () => {
    const run = await runStack(stack)
    assert.equal(run.error, null)
    const yaml = renderManifests(stack, run.resources)
    const docs = parseAllDocuments(yaml).map((d) => d.toJS() as { kind: string })
    assert.deepEqual(docs.map((d) => d.kind), ['Namespace', 'ConfigMap', 'ConfigMap', 'Secret', 'DaemonSet', 'Deployment', 'Deployment', 'Service', 'Service', 'Service', 'PodDisruptionBudget', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'Release', 'Release', 'Release'])
    const file = join(GOLDEN, `${stack}.yaml`)
    if (update || !existsSync(file)) {
      if (!update) assert.fail(`missing golden ${file}; run with UPDATE_GOLDEN=1 and commit it`)
      writeFileSync(file, yaml)
      return
    }
    assert.equal(yaml, readFileSync(file, 'utf8'), `manifests for ${stack} changed; review and refresh with UPDATE_GOLDEN=1`)
  })
}
