/**
 * Config of a stage's global stack `<stage>-global`: what is shared by every region of the stage
 * (the Global Accelerator and the public name on it, the gateway image repository and where it
 * replicates). Pure, validated once like lib/stack-config.ts.
 */
import { z } from 'zod'
import { STAGES, type Stage } from './naming.ts'
import { AWS_REGION, decoded, dnsName, hostedZoneId } from './config-values.ts'

/** `<stage>-global`, the one global stack per stage. */
export function isGlobalStack(stack: string): boolean {
  return /^[a-z]+-global$/.test(stack)
}

/** Global Accelerator's control plane exists only in us-west-2. */
export const ACCELERATOR_API_REGION = 'us-west-2'

const REGION = z.string().regex(AWS_REGION, 'an AWS region such as eu-west-1')

const GlobalConfigSchema = z.strictObject({
  /** Regions of this stage (each has a `<stage>-<region>` stack); images replicate to all but the home region. */
  regions: decoded(z.array(REGION).min(1)),
  /** Public name clients use, aliased to the accelerator. */
  domain: dnsName,
  hostedZoneId,
  /** Put a Global Accelerator in front of the stage (false: the image repository only, e.g. dev). */
  accelerator: decoded(z.boolean()),
  /** The regional listeners speak TLS on 443 (true) or plain HTTP on 80. */
  tls: decoded(z.boolean()),
  /** ECR repository name for the gateway image. */
  repositoryName: z.string().regex(/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/, 'an ECR repository name such as velox/gateway'),
  /** Untagged images are expired after this many days. */
  untaggedImageDays: decoded(z.number().int().min(1).max(3650)),
  tags: decoded(z.record(z.string(), z.string())),
})

export type GlobalConfig = Readonly<z.output<typeof GlobalConfigSchema>> & {
  readonly stage: Stage
  /** The account's home region (`aws:region`): CI pushes images here. */
  readonly homeRegion: string
}

export function parseGlobalConfig(stack: string, raw: Readonly<Record<string, string>>): GlobalConfig {
  const stage = stack.slice(0, -'-global'.length)
  if (!isGlobalStack(stack) || !(STAGES as readonly string[]).includes(stage)) throw new Error(`global stack "${stack}" must be named <stage>-global with stage one of ${STAGES.join(', ')}`)
  const user: Record<string, unknown> = { repositoryName: `velox/${stage}/gateway`, untaggedImageDays: 30, tags: {}, tls: true, accelerator: true }
  for (const [k, v] of Object.entries(raw)) if (k.startsWith('velox:')) user[k.slice('velox:'.length)] = v
  const problems: string[] = []
  const home = raw['aws:region']
  if (!home) problems.push('aws:region: required (the home region CI pushes images to)')
  const result = GlobalConfigSchema.safeParse(user)
  if (!result.success) {
    for (const issue of result.error.issues) {
      const key = `velox:${issue.path.map(String).join('.')}`
      problems.push(`${key}: ${issue.code === 'invalid_type' && issue.input === undefined ? 'required' : issue.message}`)
    }
  } else if (home && !result.data.regions.includes(home)) {
    problems.push(`velox:regions: must include the home region ${home}`)
  }
  if (problems.length > 0 || !result.success) throw new Error(`invalid stack config for "${stack}":\n  - ${problems.join('\n  - ')}`)
  return Object.freeze({ ...result.data, stage: stage as Stage, homeRegion: home! })
}
