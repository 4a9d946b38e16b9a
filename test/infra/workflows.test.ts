/**
 * The workflows are thin: they call infra/promote/cli.ts. These checks tie them to the tested
 * TypeScript so the two cannot drift (order of promotion, subcommands, policy pack, environments).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { promotionPlan } from '../../infra/promote/stacks.ts'
import { REPO_ROOT, shippedStacks } from '../../infra/tools/stack-files.ts'

const dir = join(REPO_ROOT, '.github/workflows')
const load = (f: string) => parse(readFileSync(join(dir, f), 'utf8')) as Record<string, any>
const CLI_COMMANDS = ['affected', 'plan', 'release', 'pin-image', 'set-image', 'health-gate']

test('promotion jobs follow promotionPlan, each waiting for the previous one', () => {
  const wf = load('infra-promote.yml')
  const steps = Object.entries(wf['jobs'] as Record<string, any>).filter(([, j]) => j.uses === './.github/workflows/infra-promote-step.yml')
  const plan = promotionPlan(shippedStacks())
  assert.deepEqual(steps.map(([, j]) => [j.with.stack, j.with.from]), plan.map((s) => [s.stack, s.from]))
  steps.forEach(([, job], i) => {
    const needs = [job.needs].flat()
    assert.ok(needs.includes('resolve'))
    if (i > 0) assert.ok(needs.includes(steps[i - 1]![0]), `${job.with.stack} waits for ${steps[i - 1]![0]}`)
    assert.equal(job.with.image, '${{ needs.resolve.outputs.image }}', 'the same image every step')
    assert.equal(job.with.commit, '${{ needs.resolve.outputs.commit }}', 'the same commit every step')
  })
  const step = load('infra-promote-step.yml')
  assert.equal(step['jobs'].promote.environment, '${{ inputs.stack }}', 'each stack is a protected environment')
  const runs = step['jobs'].promote.steps.map((s: { run?: string }) => s.run ?? '').join('\n')
  assert.match(runs, /health-gate/)
  assert.match(runs, /release --outputs from.json --expect/)
})

test('previews and ups run the policy pack; PR previews comment and cover affected stacks', () => {
  const pr = load('infra-pr.yml')
  const preview = pr['jobs'].preview.steps.find((s: { uses?: string }) => s.uses?.startsWith('pulumi/actions@'))
  assert.equal(preview.with.command, 'preview')
  assert.equal(preview.with['comment-on-pr'], true)
  assert.equal(preview.with.policyPacks, 'infra/policy')
  assert.equal(pr['jobs'].preview.strategy.matrix.stack, '${{ fromJSON(needs.test.outputs.stacks) }}')
  const dev = load('infra-deploy-dev.yml')
  const up = dev['jobs']['up-dev'].steps.find((s: { uses?: string }) => s.uses?.startsWith('pulumi/actions@'))
  assert.equal(up.with.command, 'up')
  assert.deepEqual(dev['jobs']['up-dev'].strategy.matrix.stack, shippedStacks().filter((s) => s.startsWith('dev-')))
})

test('every CLI call in a workflow is a subcommand the CLI has', () => {
  for (const f of readdirSync(dir)) {
    const text = readFileSync(join(dir, f), 'utf8')
    for (const m of text.matchAll(/infra\/promote\/cli\.ts ([a-z-]+)/g)) assert.ok(CLI_COMMANDS.includes(m[1]!), `${f}: ${m[1]}`)
  }
  const cli = readFileSync(join(REPO_ROOT, 'infra/promote/cli.ts'), 'utf8')
  for (const c of CLI_COMMANDS) assert.ok(cli.includes(`case '${c}':`), c)
})

test('a job that runs the CLI installs the dependencies first and runs it on the project\'s Node', () => {
  let calls = 0
  for (const f of readdirSync(dir)) {
    for (const [name, job] of Object.entries(load(f)['jobs'] as Record<string, any>)) {
      const runs: string[] = (job.steps ?? []).map((s: { run?: string }) => s.run ?? '')
      const installed = runs.findIndex((r) => /^npm ci\b/m.test(r))
      runs.forEach((run, i) => {
        for (const m of run.matchAll(/(\S*)\s+infra\/promote\/cli\.ts\b/g)) {
          calls++
          // The CLI imports yaml and zod: without `npm ci` in the same job it cannot start.
          assert.ok(installed !== -1 && installed < i, `${f} ${name}: step ${i} runs the CLI before any npm ci`)
          assert.equal(m[1], 'node_modules/.bin/node', `${f} ${name}: step ${i}`)
        }
      })
    }
  }
  assert.ok(calls >= 5, `${calls} CLI calls found`)
})

test('jobs that reach a cluster run on a self-hosted runner of that stack; PR previews never run forks there', () => {
  const clusterJobs: [string, string, string][] = [
    ['infra-deploy-dev.yml', 'up-dev', '${{ matrix.stack }}'],
    ['infra-pr.yml', 'preview', '${{ matrix.stack }}'],
    ['infra-promote-step.yml', 'promote', '${{ inputs.stack }}'],
  ]
  for (const [file, job, stack] of clusterJobs) {
    assert.deepEqual(load(file)['jobs'][job]['runs-on'], ['self-hosted', 'velox', stack], `${file} ${job}`)
  }
  assert.match(load('infra-pr.yml')['jobs'].preview.if, /github\.event\.pull_request\.head\.repo\.full_name == github\.repository/)
  // Everything else stays on GitHub-hosted runners: no cluster access, nothing to protect.
  for (const f of readdirSync(dir)) {
    for (const [name, job] of Object.entries(load(f)['jobs'] as Record<string, any>)) {
      if (clusterJobs.some(([file, j]) => file === f && j === name) || job.uses) continue
      assert.equal(job['runs-on'], 'ubuntu-latest', `${f} ${name}`)
    }
  }
})

test('images go to ECR; every set-image is committed on release/<stack> before the pulumi up that uses it', () => {
  for (const [file, job] of [['infra-deploy-dev.yml', 'up-dev'], ['infra-promote-step.yml', 'promote']] as const) {
    const wf = load(file)
    assert.equal(wf['permissions'].contents, 'write', `${file}: may push release branches`)
    const steps = wf['jobs'][job].steps as { run?: string; uses?: string; with?: Record<string, unknown> }[]
    const setImage = steps.findIndex((s) => /cli\.ts set-image/.test(s.run ?? ''))
    const commit = steps.findIndex((s) => /git push --force origin "release\//.test(s.run ?? ''))
    const up = steps.findIndex((s) => s.uses?.startsWith('pulumi/actions@') && s.with?.['command'] === 'up')
    assert.ok(setImage >= 0 && setImage < commit && commit < up, `${file}: set-image -> commit -> up (${setImage}, ${commit}, ${up})`)
    assert.match(steps[commit]!.run!, /git add "regions\/Pulumi\.\$\{\{ (matrix|inputs)\.stack \}\}\.yaml"/)
  }
  const texts = readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('\n')
  assert.doesNotMatch(texts, /ghcr\.io/, 'no GHCR images: nodes pull from ECR with their role')
  const dev = load('infra-deploy-dev.yml')
  assert.deepEqual(dev['jobs'].image.needs, 'global', 'the repository exists before the push')
  assert.match(dev['jobs'].image.steps.find((s: { id?: string }) => s.id === 'build').with.tags, /velox\/dev\/gateway:/)
  const step = load('infra-promote-step.yml')['jobs'].promote.steps.map((s: { run?: string }) => s.run ?? '').join('\n')
  assert.match(step, /imagetools create --tag "\$target:\$\{\{ inputs\.commit \}\}" "\$\{\{ inputs\.image \}\}"/)
  assert.match(step, /pulumi up --yes --stack "\$ORG\/\$\{STACK%%-\*\}-global"/)
})
