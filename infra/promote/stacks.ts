/**
 * Which stacks a change affects, and the order a release moves through them. Pure.
 */
import { STAGES, parseStackName, type Stage } from '../lib/naming.ts'

/** Prod regions go one at a time in this order (busiest first, so a bad release is caught where it is watched most); others follow alphabetically. */
export const PROD_REGION_ORDER: readonly string[] = ['us-east-1', 'eu-west-1', 'ap-northeast-1']

/**
 * Files that change what every stack deploys. The gateway config schema is config/ plus each
 * folder's config.ts (infra renders configs against it), the region program hashes the API keys
 * with auth/authenticator.ts (which imports errors.ts), and gateway/package.json pins the zod it
 * runs on. A test checks this covers every file schema.ts and the infra program import.
 */
const EVERY_STACK = [
  /^infra\//,
  /^Pulumi\.yaml$/,
  /^package(-lock)?\.json$/,
  /^gateway\/package\.json$/,
  /^gateway\/src\/config\//,
  /^gateway\/src\/[^/]+\/config\.ts$/,
  /^gateway\/src\/auth\/authenticator\.ts$/,
  /^gateway\/src\/errors\.ts$/,
]

/**
 * Stacks whose `pulumi preview` a change can alter: a region file affects its own stack; the
 * program, the project file, dependencies or the gateway files the program imports affect all of
 * them. Docs, tests and the rest of the gateway's code do not change infrastructure.
 */
export function affectedStacks(changedFiles: readonly string[], stacks: readonly string[]): string[] {
  const hit = new Set<string>()
  for (const file of changedFiles) {
    if (EVERY_STACK.some((re) => re.test(file))) return [...stacks].sort()
    const m = /^regions\/Pulumi\.(.+)\.yaml$/.exec(file)
    if (m && stacks.includes(m[1]!)) hit.add(m[1]!)
  }
  return [...hit].sort()
}

export function stacksOfStage(stacks: readonly string[], stage: Stage): string[] {
  return stacks.filter((s) => parseStackName(s).stage === stage)
}

function regionRank(region: string): number {
  const i = PROD_REGION_ORDER.indexOf(region)
  return i < 0 ? PROD_REGION_ORDER.length : i
}

/**
 * The promotion path after dev: every staging stack, then every prod stack, one at a time.
 * Each step names the stack whose outputs it copies the image from.
 */
export function promotionPlan(stacks: readonly string[]): { stack: string; from: string }[] {
  const ordered = (stage: Stage) => stacksOfStage(stacks, stage).sort((a, b) => {
    const ra = parseStackName(a).region, rb = parseStackName(b).region
    return regionRank(ra) - regionRank(rb) || ra.localeCompare(rb)
  })
  const steps: { stack: string; from: string }[] = []
  let previous = ordered('dev')[0]
  if (!previous) throw new Error('no dev stack to promote from')
  for (const stage of STAGES.slice(1)) {
    const group = ordered(stage)
    const source = previous
    for (const stack of group) steps.push({ stack, from: source })
    // The next stage promotes what the whole previous stage runs; its first stack is as good as any.
    if (group[0]) previous = group[0]
  }
  return steps
}
