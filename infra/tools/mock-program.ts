/**
 * Runs the Pulumi program for one stack under Pulumi's mocks and records every resource it
 * declares (type, name, inputs, provider, URN) and every stack output. Used by the tests and by
 * render-manifests. Pulumi's runtime state is process-global: run ONE stack per process.
 *
 * The mocks answer with the outputs AWS and Kubernetes would produce (cluster endpoint and OIDC
 * issuer, cache endpoint, load balancer hostname), so everything downstream of them is exercised.
 */
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { REPO_ROOT, readStackConfig } from './stack-files.ts'

export interface DeclaredResource {
  readonly type: string
  readonly name: string
  readonly inputs: Record<string, any>
  readonly provider: string | undefined
  /** Type chain of the URN, e.g. `velox:cache:Cache$aws:elasticache/replicationGroup:ReplicationGroup`. */
  readonly typeChain: string
  readonly custom: boolean
}

export interface ProgramRun {
  readonly stack: string
  readonly resources: DeclaredResource[]
  readonly outputs: Record<string, unknown>
  /** Set when the program threw: nothing after the throw was declared. */
  readonly error: string | null
}

export interface RunOptions {
  /** Config values layered over regions/Pulumi.<stack>.yaml (`velox:key` -> string). */
  readonly overrides?: Readonly<Record<string, string>>
  /** Keys to remove from the file's config. */
  readonly remove?: readonly string[]
  /** Secret config values (`velox:cacheAuthToken`). */
  readonly secrets?: Readonly<Record<string, string>>
}

function fakeId(name: string): string {
  let h = 0
  for (const c of name) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0
  return h.toString(16).padStart(8, '0')
}

function mockState(type: string, name: string, inputs: Record<string, any>, region: string): Record<string, any> {
  const id = fakeId(name)
  const arn = `arn:aws:${type.split(':')[1]?.split('/')[0] ?? 'x'}:${region}:123456789012:${name}`
  switch (type) {
    case 'aws:eks/cluster:Cluster':
      return {
        ...inputs, arn,
        endpoint: `https://${id.toUpperCase()}.gr7.${region}.eks.amazonaws.com`,
        certificateAuthority: { data: Buffer.from(`ca-${name}`).toString('base64') },
        identities: [{ oidcs: [{ issuer: `https://oidc.eks.${region}.amazonaws.com/id/${id.toUpperCase()}` }] }],
        vpcConfig: { ...inputs['vpcConfig'], clusterSecurityGroupId: `sg-${id}` },
      }
    case 'aws:elasticache/replicationGroup:ReplicationGroup':
      return { ...inputs, arn, primaryEndpointAddress: `master.${inputs['replicationGroupId']}.${id.slice(0, 6)}.${region}.cache.amazonaws.com` }
    case 'aws:ec2/launchTemplate:LaunchTemplate':
      return { ...inputs, arn, latestVersion: 1 }
    case 'aws:ec2/placementGroup:PlacementGroup':
      return { ...inputs, arn, name: inputs['name'] ?? name }
    case 'aws:eks/nodeGroup:NodeGroup':
      return { ...inputs, arn, nodeGroupName: inputs['nodeGroupName'] ?? name }
    case 'aws:iam/role:Role':
      return { ...inputs, arn: `arn:aws:iam::123456789012:role/${name}`, name }
    case 'aws:route53/record:Record':
      return { ...inputs, fqdn: inputs['name'] }
    case 'kubernetes:core/v1:Service':
      return inputs['spec']?.type === 'LoadBalancer'
        ? { ...inputs, status: { loadBalancer: { ingress: [{ hostname: `a${id}-${id}.elb.${region}.amazonaws.com` }] } } }
        : inputs
    default:
      return { ...inputs, arn }
  }
}

/**
 * Installs mocks that answer like AWS and Kubernetes would for `region`; returns the list every
 * declared resource is appended to. Call once per process, before declaring anything.
 */
export async function installMocks(stack: string, region: string): Promise<DeclaredResource[]> {
  const pulumi = await import('@pulumi/pulumi')
  const resources: DeclaredResource[] = []
  await pulumi.runtime.setMocks({
    newResource(args) {
      const state = mockState(args.type, args.name, args.inputs, region)
      resources.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider, typeChain: '', custom: args.custom ?? true })
      return { id: args.type.startsWith('pulumi:providers:') ? `${args.name}_id` : `${fakeId(args.name)}-${args.name}`.slice(0, 60), state }
    },
    call(args) {
      if (args.token === 'aws:index/getAvailabilityZones:getAvailabilityZones') {
        return { names: ['a', 'b', 'c', 'd'].map((z) => `${region}${z}`), zoneIds: ['1', '2', '3', '4'].map((z) => `use1-az${z}`), state: 'available' }
      }
      if (args.token === 'aws:lb/getHostedZoneId:getHostedZoneId') return { id: 'Z26RNL4JYFTOTI', region }
      throw new Error(`unmocked call ${args.token}`)
    },
  }, 'velox', stack, false)
  return resources
}

/** Fills in each resource's URN type chain (its parents), which MockResourceArgs does not carry. */
export async function withTypeChains(resources: readonly DeclaredResource[]): Promise<DeclaredResource[]> {
  const pulumi = await import('@pulumi/pulumi')
  const monitor = (pulumi.runtime.getMonitor() as unknown as { getRegisteredResources?: () => Map<string, unknown> } | undefined)
  const chains = new Map<string, string>()
  for (const urn of monitor?.getRegisteredResources?.().keys() ?? []) {
    const [, , qualifiedType = '', resName = ''] = urn.split('::')
    chains.set(`${qualifiedType.split('$').pop()}::${resName}`, qualifiedType)
  }
  return resources.map((r) => ({ ...r, typeChain: chains.get(`${r.type}::${r.name}`) ?? r.type }))
}

export async function runProgram(stack: string, options: RunOptions = {}): Promise<ProgramRun> {
  const config: Record<string, string> = { ...readStackConfig(stack), ...options.overrides, ...options.secrets }
  for (const key of options.remove ?? []) delete config[key]
  process.env['PULUMI_CONFIG'] = JSON.stringify(config)
  process.env['PULUMI_CONFIG_SECRET_KEYS'] = JSON.stringify(Object.keys(options.secrets ?? {}))
  const region = config['aws:region'] ?? 'us-east-1'

  const pulumi = await import('@pulumi/pulumi')
  const resources = await installMocks(stack, region)

  const rejections: unknown[] = []
  const onRejection = (err: unknown) => { rejections.push(err) }
  process.on('unhandledRejection', onRejection)
  let error: string | null = null
  const outputs: Record<string, unknown> = {}
  try {
    const program = await import(pathToFileURL(join(REPO_ROOT, 'infra', 'index.ts')).href) as Record<string, unknown>
    for (const [key, value] of Object.entries(program)) {
      outputs[key] = pulumi.Output.isInstance(value) ? await new Promise((resolve) => value.apply((v) => { resolve(v); return v })) : value
    }
    await pulumi.runtime.disconnect()
  } catch (err) {
    error = err instanceof Error ? err.message : String(err)
  }
  process.off('unhandledRejection', onRejection)
  if (!error && rejections.length > 0) error = rejections.map((e) => (e instanceof Error ? e.message : String(e))).join('\n')

  return { stack, resources: await withTypeChains(resources), outputs, error }
}

// CLI: node infra/tools/mock-program.ts <stack> [key=value ...]  -> JSON on stdout.
if (import.meta.main) {
  const [stack, ...pairs] = process.argv.slice(2)
  if (!stack) {
    console.error('usage: node infra/tools/mock-program.ts <stack> [velox:key=value ...] [-velox:key ...]')
    process.exit(2)
  }
  const overrides: Record<string, string> = {}
  const remove: string[] = []
  for (const p of pairs) {
    if (p.startsWith('-')) remove.push(p.slice(1))
    else { const i = p.indexOf('='); overrides[p.slice(0, i)] = p.slice(i + 1) }
  }
  const secrets: Record<string, string> = {}
  for (const key of ['velox:cacheAuthToken', 'velox:hfToken', 'velox:peerApiKey']) {
    if (overrides[key] !== undefined) { secrets[key] = overrides[key]; delete overrides[key] }
  }
  const run = await runProgram(stack, { overrides, remove, secrets })
  process.stdout.write(JSON.stringify(run))
}
