/**
 * Golden files for the Kubernetes manifests each shipped stack applies, rendered offline by
 * infra/tools/render-manifests.ts. Review the diff, then refresh with
 *   UPDATE_GOLDEN=1 node --test test/infra/manifests-golden.test.ts
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { REPO_ROOT, shippedStacks } from '../../infra/tools/stack-files.ts'

const TOOL = join(REPO_ROOT, 'infra/tools/render-manifests.ts')
const GOLDEN = join(REPO_ROOT, 'test/infra/golden')
const update = process.env['UPDATE_GOLDEN'] === '1'

function render(stack: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [TOOL, stack], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 }, (err, out, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(out))
  })
}

const stacks = shippedStacks()
// Two renders in flight at a time (two cores).
const renders = new Map<string, Promise<string>>()
let chain: Promise<unknown> = Promise.resolve()
for (const [i, s] of stacks.entries()) {
  const start = i < 2 ? Promise.resolve() : chain
  const p = start.then(() => render(s))
  if (i % 2 === 1 || i === 0) chain = p.catch(() => {})
  renders.set(s, p)
}

for (const stack of stacks) {
  test(`${stack}: manifests match test/infra/golden/${stack}.yaml`, async () => {
    const yaml = await renders.get(stack)!
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
