/**
 * The release that moves between stages: one gateway image digest, read from the previous
 * stage's stack outputs and written into the next stage's stack config. Pure.
 */
import { parseDocument } from 'yaml'

const DIGEST_IMAGE = /^[a-z0-9]+([._\-/:][a-z0-9]+)*@sha256:[a-f0-9]{64}$/

export interface Release {
  readonly image: string
  readonly digest: string
  readonly stage: string
  readonly region: string
}

/** Reads `pulumi stack output --json` of the stage being promoted from. */
export function releaseFromOutputs(outputs: Readonly<Record<string, unknown>>): Release {
  const image = outputs['gatewayImage']
  if (typeof image !== 'string') throw new Error('stack outputs have no gatewayImage; was the stack deployed by this program?')
  if (!DIGEST_IMAGE.test(image)) throw new Error(`gatewayImage "${image}" is not pinned by digest; promote only what ran as repo@sha256:...`)
  return { image, digest: image.slice(image.indexOf('@') + 1), stage: String(outputs['stage'] ?? ''), region: String(outputs['region'] ?? '') }
}

/** Pins a pushed image (repo:tag plus the digest the registry returned) to repo@sha256:... */
export function pinImage(image: string, digest: string): string {
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new Error(`"${digest}" is not a sha256 digest`)
  const repo = image.replace(/@sha256:[a-f0-9]{64}$/, '').replace(/:[\w][\w.-]{0,127}$/, '')
  return `${repo}@${digest}`
}

/** Returns the stack file with velox:gatewayImage set, comments and order kept. */
export function setGatewayImage(stackFileText: string, image: string): string {
  const doc = parseDocument(stackFileText)
  if (doc.errors.length > 0) throw new Error(`stack file is not valid YAML: ${doc.errors[0]!.message}`)
  if (!doc.has('config')) doc.set('config', doc.createNode({}))
  doc.setIn(['config', 'velox:gatewayImage'], image)
  return doc.toString({ lineWidth: 0 })
}

const ECR_HOST = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com\//

/**
 * The same image as pulled in `region`: an ECR image is rewritten to that region's replica of the
 * repository (same account and name, same digest); any other registry is left alone.
 */
export function regionalImage(image: string, region: string): string {
  return image.replace(ECR_HOST, (_, account: string) => `${account}.dkr.ecr.${region}.amazonaws.com/`)
}
