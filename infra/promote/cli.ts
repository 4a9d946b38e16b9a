/**
 * What the CI/CD workflows call; all logic lives in the tested modules beside this file.
 *
 *   node infra/promote/cli.ts affected --base <git-ref>        stacks a PR/push changes (JSON)
 *   node infra/promote/cli.ts plan                              promotion steps after dev (JSON)
 *   node infra/promote/cli.ts release --outputs <file> [--expect <image>]  image digest from a stack's outputs
 *   node infra/promote/cli.ts pin-image <repo:tag> <sha256:..>  repo@sha256:...
 *   node infra/promote/cli.ts set-image <stack> <image>         writes velox:gatewayImage
 *   node infra/promote/cli.ts health-gate --url <url> [--successes N] [--deadline-s N] [--interval-s N]
 *
 * Results go to stdout and, under GitHub Actions, to $GITHUB_OUTPUT as key=value lines.
 */
import { execFileSync } from 'node:child_process'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { REGIONS_DIR, shippedGlobalStacks, shippedStacks, stackFile } from '../tools/stack-files.ts'
import { healthGate } from './health.ts'
import { parseStackName } from '../lib/naming.ts'
import { pinImage, regionalImage, releaseFromOutputs, setGatewayImage } from './release.ts'
import { affectedStacks, promotionPlan } from './stacks.ts'

function emit(key: string, value: string): void {
  process.stdout.write(`${value}\n`)
  const out = process.env['GITHUB_OUTPUT']
  if (out) appendFileSync(out, `${key}=${value}\n`)
}

const [command, ...rest] = process.argv.slice(2)
const { values, positionals } = parseArgs({
  args: rest,
  allowPositionals: true,
  options: {
    base: { type: 'string' }, outputs: { type: 'string' }, expect: { type: 'string' }, url: { type: 'string' }, dir: { type: 'string' },
    successes: { type: 'string', default: '5' }, 'deadline-s': { type: 'string', default: '600' }, 'interval-s': { type: 'string', default: '10' },
  },
})
const dir = values.dir ?? REGIONS_DIR

switch (command) {
  case 'affected': {
    if (!values.base) throw new Error('affected needs --base <git-ref>')
    const changed = execFileSync('git', ['diff', '--name-only', `${values.base}...HEAD`], { encoding: 'utf8' }).split('\n').filter(Boolean)
    emit('stacks', JSON.stringify(affectedStacks(changed, [...shippedGlobalStacks(dir), ...shippedStacks(dir)])))
    break
  }
  case 'plan':
    emit('plan', JSON.stringify(promotionPlan(shippedStacks(dir))))
    break
  case 'release': {
    if (!values.outputs) throw new Error('release needs --outputs <file from `pulumi stack output --json`>')
    const { image, digest } = releaseFromOutputs(JSON.parse(readFileSync(values.outputs, 'utf8')) as Record<string, unknown>)
    // Every step must move the very image (digest) the promotion started with; regions pull it
    // from their own ECR replica, so the registry host may differ.
    if (values.expect && !values.expect.endsWith(`@${digest}`)) throw new Error(`previous stage runs ${image}, but this promotion is for ${values.expect}`)
    emit('image', image)
    break
  }
  case 'pin-image': {
    const [image, digest] = positionals
    if (!image || !digest) throw new Error('pin-image needs <image> <digest>')
    emit('image', pinImage(image, digest))
    break
  }
  case 'set-image': {
    const [stack, image] = positionals
    if (!stack || !image) throw new Error('set-image needs <stack> <image>')
    const file = stackFile(stack, dir)
    // One digest everywhere; an ECR image is pulled from the stack's own region's replica.
    const local = regionalImage(image, parseStackName(stack).region)
    writeFileSync(file, setGatewayImage(readFileSync(file, 'utf8'), local))
    emit('image', local)
    break
  }
  case 'health-gate': {
    if (!values.url) throw new Error('health-gate needs --url <regional url>')
    const result = await healthGate({
      url: values.url,
      successes: Number(values.successes),
      deadlineMs: Number(values['deadline-s']) * 1000,
      intervalMs: Number(values['interval-s']) * 1000,
      timeoutMs: 5000,
    })
    emit('healthy', String(result.healthy))
    console.error(JSON.stringify(result))
    if (!result.healthy) process.exitCode = 1
    break
  }
  default:
    console.error('usage: node infra/promote/cli.ts affected|plan|release|pin-image|set-image|health-gate ...')
    process.exitCode = 2
}
