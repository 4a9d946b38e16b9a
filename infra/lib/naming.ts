/** Names and tags derived from the stack name; one place so every component agrees. */
import { AWS_REGION } from './config-values.ts'

export const STAGES = ['dev', 'staging', 'prod'] as const
export type Stage = (typeof STAGES)[number]

export interface StackIdentity {
  readonly stage: Stage
  readonly region: string
}

/** Splits `<stage>-<region>` (the only stack naming the platform accepts). */
export function parseStackName(stack: string): StackIdentity {
  const dash = stack.indexOf('-')
  const stage = stack.slice(0, dash)
  const region = stack.slice(dash + 1)
  if (dash < 0 || !(STAGES as readonly string[]).includes(stage) || !AWS_REGION.test(region)) {
    throw new Error(`stack "${stack}" must be named <stage>-<region> with stage one of ${STAGES.join(', ')} (e.g. prod-eu-west-1)`)
  }
  return { stage: stage as Stage, region }
}

/** Base name for regional resources: short, lowercase, unique per account across stacks. */
export function baseName(id: StackIdentity): string {
  return `velox-${id.stage}-${id.region}`
}

/** Tags every taggable resource carries (through the provider's defaultTags). */
export function baseTags(id: StackIdentity, extra: Readonly<Record<string, string>> = {}): Record<string, string> {
  return { 'velox:stage': id.stage, 'velox:region': id.region, 'velox:managed-by': 'pulumi', project: 'velox', ...extra }
}
