/**
 * Runs the Pulumi program for one stack under Pulumi's mocks and records every resource it
 * declares (type, name, inputs, provider, URN) and every stack output. Used by the tests and by
 * render-manifests. Pulumi's runtime state is process-global: one stack per process, or one after
 * another under serve(), which renews that state and the program's modules for each run.
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
  /** What the mocked service reported back (inputs plus computed ids, ARNs, endpoints). */
  readonly state: Record<string, any>
  readonly id: string
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

/** Deterministic hex of any length, as AWS ids and hashes look. */
function hex(name: string, length: number): string {
  let out = '', salt = 0
  while (out.length < length) out += fakeId(`${salt++}:${name}`)
  return out.slice(0, length)
}

const ACCOUNT = '123456789012'

/**
 * The AZs the mocks report per region (names and zone ids as AWS lists them: ap-northeast-1 has
 * no "b", us-east-1 has six). Other regions get a, b, c.
 */
export const MOCK_ZONES: Readonly<Record<string, readonly [name: string, id: string][]>> = {
  'us-east-1': [['us-east-1a', 'use1-az1'], ['us-east-1b', 'use1-az2'], ['us-east-1c', 'use1-az4'], ['us-east-1d', 'use1-az6'], ['us-east-1e', 'use1-az3'], ['us-east-1f', 'use1-az5']],
  'eu-west-1': [['eu-west-1a', 'euw1-az3'], ['eu-west-1b', 'euw1-az1'], ['eu-west-1c', 'euw1-az2']],
  'ap-northeast-1': [['ap-northeast-1a', 'apne1-az4'], ['ap-northeast-1c', 'apne1-az1'], ['ap-northeast-1d', 'apne1-az2']],
}

export function mockZones(region: string): readonly [string, string][] {
  return MOCK_ZONES[region] ?? ['a', 'b', 'c'].map((z, i) => [`${region}${z}`, `${region}-az${i + 1}`] as [string, string])
}

/**
 * Modelled offering gaps (not AWS's real table): us-east-1e offers none of the node families and
 * p5 is in two us-east-1 AZs only, so AZ picking and the offering check are exercised. More gaps
 * come from VELOX_MOCK_NOT_OFFERED="type@zone,..." (tests set it to break a stack on purpose).
 */
function notOffered(): Set<string> {
  const gaps = ['c7gn', 'c6gn', 'c6in', 'g6e', 'g6', 'p5', 'p5e'].map((f) => `${f}.*@us-east-1e`)
  gaps.push('p5.48xlarge@us-east-1b', 'p5.48xlarge@us-east-1c', 'p5.48xlarge@us-east-1d')
  for (const g of (process.env['VELOX_MOCK_NOT_OFFERED'] ?? '').split(',').filter(Boolean)) gaps.push(g)
  return new Set(gaps)
}

function offered(type: string, zone: string, gaps: Set<string>): boolean {
  return !gaps.has(`${type}@${zone}`) && !gaps.has(`${type.split('.')[0]}.*@${zone}`)
}

/**
 * Add-on versions DescribeAddonVersions would report per cluster version (shape `vX.Y.Z-eksbuild.N`);
 * a version missing here fails the lookup the way AWS does.
 */
export const MOCK_ADDON_VERSIONS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  '1.34': { 'vpc-cni': 'v1.20.4-eksbuild.2', coredns: 'v1.12.4-eksbuild.1', 'kube-proxy': 'v1.34.1-eksbuild.2', 'eks-pod-identity-agent': 'v1.3.9-eksbuild.3' },
  '1.35': { 'vpc-cni': 'v1.21.1-eksbuild.1', coredns: 'v1.13.1-eksbuild.1', 'kube-proxy': 'v1.35.0-eksbuild.2', 'eks-pod-identity-agent': 'v1.3.10-eksbuild.1' },
}

/** The short region code in ElastiCache endpoints: us-east-1 -> use1. */
function regionCode(region: string): string {
  const [geo = '', dir = '', n = ''] = region.split('-')
  return `${geo}${dir.replace(/east/, 'e').replace(/west/, 'w').replace(/north/, 'n').replace(/south/, 's').replace(/central/, 'c').replace(/northeast/, 'ne').slice(0, 2)}${n}`
}

/** Pulumi auto-names a resource without an explicit name: `<name>-<7 hex>`. */
function autoname(name: string): string {
  return `${name}-${hex(`auto:${name}`, 7)}`
}

/** The id AWS assigns, by resource type. */
function mockId(type: string, name: string, inputs: Record<string, any>): string {
  const h = (n: number) => hex(`${type}:${name}`, n)
  switch (type) {
    case 'aws:ec2/vpc:Vpc': return `vpc-0${h(16)}`
    case 'aws:ec2/subnet:Subnet': return `subnet-0${h(16)}`
    case 'aws:ec2/securityGroup:SecurityGroup': return `sg-0${h(16)}`
    case 'aws:ec2/internetGateway:InternetGateway': return `igw-0${h(16)}`
    case 'aws:ec2/natGateway:NatGateway': return `nat-0${h(16)}`
    case 'aws:ec2/eip:Eip': return `eipalloc-0${h(16)}`
    case 'aws:ec2/routeTable:RouteTable': return `rtb-0${h(16)}`
    case 'aws:ec2/launchTemplate:LaunchTemplate': return `lt-0${h(16)}`
    case 'aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule': return `sgr-0${h(16)}`
    case 'aws:route53/healthCheck:HealthCheck': return `${h(8)}-${h(12).slice(0, 4)}-4${h(3)}-a${h(3)}-${h(12)}`
    case 'aws:eks/cluster:Cluster': return String(inputs['name'] ?? name)
    // IAM's id for a role is its name.
    case 'aws:iam/role:Role': return String(inputs['name'] ?? autoname(name))
    case 'aws:eks/accessEntry:AccessEntry': return `${inputs['clusterName']}:${inputs['principalArn']}`
    case 'aws:eks/accessPolicyAssociation:AccessPolicyAssociation': return `${inputs['clusterName']}#${inputs['principalArn']}#${inputs['policyArn']}`
    case 'aws:elasticache/replicationGroup:ReplicationGroup': return String(inputs['replicationGroupId'] ?? name)
    default: return `${h(8)}-${name}`.slice(0, 60)
  }
}

/**
 * The state AWS (or Kubernetes) reports after a create: the inputs plus what the service computes
 * (ids, ARNs, endpoints, certificate data, DNS names, auto-generated names), in the formats the
 * real services use, so every apply over a computed output parses what it would parse in AWS.
 */
function mockState(type: string, name: string, id: string, inputs: Record<string, any>, region: string): Record<string, any> {
  const h = (n: number) => hex(`${type}:${name}`, n)
  const arn = (service: string, resource: string, r: string = region) => `arn:aws:${service}:${r}:${ACCOUNT}:${resource}`
  switch (type) {
    case 'aws:eks/cluster:Cluster': {
      const clusterName = String(inputs['name'] ?? autoname(name))
      return {
        ...inputs, name: clusterName, arn: arn('eks', `cluster/${clusterName}`), status: 'ACTIVE', platformVersion: 'eks.4',
        endpoint: `https://${h(32).toUpperCase()}.gr7.${region}.eks.amazonaws.com`,
        certificateAuthority: { data: Buffer.from(`-----BEGIN CERTIFICATE-----\nMII${h(60)}\n-----END CERTIFICATE-----\n`).toString('base64') },
        identities: [{ oidcs: [{ issuer: `https://oidc.eks.${region}.amazonaws.com/id/${h(32).toUpperCase()}` }] }],
        vpcConfig: { ...inputs['vpcConfig'], clusterSecurityGroupId: `sg-0${hex(`clustersg:${name}`, 16)}`, vpcId: `vpc-0${hex('vpc', 16)}` },
      }
    }
    case 'aws:eks/accessEntry:AccessEntry': {
      const principal = String(inputs['principalArn'])
      return { ...inputs, accessEntryArn: arn('eks', `access-entry/${inputs['clusterName']}/role/${ACCOUNT}/${principal.split('/').pop()}/${h(8)}-${h(4)}`), userName: principal, type: inputs['type'] ?? 'STANDARD' }
    }
    case 'aws:eks/accessPolicyAssociation:AccessPolicyAssociation':
      return { ...inputs, associatedAt: '2026-12-01T00:00:00Z', modifiedAt: '2026-12-01T00:00:00Z' }
    case 'aws:eks/addon:Addon':
      return { ...inputs, arn: arn('eks', `addon/${inputs['clusterName']}/${inputs['addonName']}/${h(8)}`), addonVersion: inputs['addonVersion'] }
    case 'aws:eks/nodeGroup:NodeGroup': {
      const nodeGroupName = String(inputs['nodeGroupName'] ?? autoname(name))
      return { ...inputs, nodeGroupName, arn: arn('eks', `nodegroup/${inputs['clusterName']}/${nodeGroupName}/${h(8)}`), status: 'ACTIVE', resources: [{ autoscalingGroups: [{ name: `eks-${nodeGroupName}-${h(8)}` }] }] }
    }
    case 'aws:elasticache/replicationGroup:ReplicationGroup': {
      const rg = String(inputs['replicationGroupId'])
      const members = Array.from({ length: Number(inputs['numCacheClusters'] ?? 1) }, (_, i) => `${rg}-00${i + 1}`)
      return {
        ...inputs, arn: arn('elasticache', `replicationgroup:${rg}`), memberClusters: members, clusterEnabled: false,
        primaryEndpointAddress: `master.${rg}.${h(6)}.${regionCode(region)}.cache.amazonaws.com`,
        readerEndpointAddress: `replica.${rg}.${h(6)}.${regionCode(region)}.cache.amazonaws.com`,
      }
    }
    case 'aws:ec2/subnet:Subnet': {
      const zone = mockZones(region).find(([n]) => n === inputs['availabilityZone'])
      return { ...inputs, arn: arn('ec2', `subnet/${id}`), availabilityZoneId: zone?.[1] ?? '', ownerId: ACCOUNT }
    }
    case 'aws:ec2/vpc:Vpc':
      return { ...inputs, arn: arn('ec2', `vpc/${id}`), defaultSecurityGroupId: `sg-0${h(16)}`, mainRouteTableId: `rtb-0${h(16)}` }
    case 'aws:ec2/securityGroup:SecurityGroup':
      return { ...inputs, name: inputs['name'] ?? autoname(name), arn: arn('ec2', `security-group/${id}`), ownerId: ACCOUNT }
    case 'aws:ec2/launchTemplate:LaunchTemplate':
      return { ...inputs, name: inputs['name'] ?? autoname(name), arn: arn('ec2', `launch-template/${id}`), latestVersion: 1, defaultVersion: 1 }
    case 'aws:ec2/placementGroup:PlacementGroup': {
      const pgName = String(inputs['name'] ?? autoname(name))
      return { ...inputs, name: pgName, arn: arn('ec2', `placement-group/${pgName}`), placementGroupId: `pg-0${h(16)}` }
    }
    case 'aws:elasticache/parameterGroup:ParameterGroup':
    case 'aws:elasticache/subnetGroup:SubnetGroup': {
      const n = String(inputs['name'] ?? autoname(name)).toLowerCase()
      return { ...inputs, name: n, arn: arn('elasticache', `${type.includes('parameter') ? 'parametergroup' : 'subnetgroup'}:${n}`) }
    }
    case 'aws:iam/role:Role': {
      const roleName = String(inputs['name'] ?? autoname(name))
      return { ...inputs, name: roleName, arn: `arn:aws:iam::${ACCOUNT}:role/${roleName}`, uniqueId: `AROA${h(17).toUpperCase()}` }
    }
    case 'aws:iam/openIdConnectProvider:OpenIdConnectProvider':
      return { ...inputs, arn: `arn:aws:iam::${ACCOUNT}:oidc-provider/${String(inputs['url']).replace(/^https:\/\//, '')}` }
    case 'aws:ecr/repository:Repository': {
      const repo = String(inputs['name'] ?? autoname(name))
      return { ...inputs, name: repo, arn: arn('ecr', `repository/${repo}`), registryId: ACCOUNT, repositoryUrl: `${ACCOUNT}.dkr.ecr.${region}.amazonaws.com/${repo}` }
    }
    case 'aws:ecr/replicationConfiguration:ReplicationConfiguration':
      return { ...inputs, registryId: ACCOUNT }
    case 'aws:globalaccelerator/accelerator:Accelerator':
      return {
        ...inputs, arn: `arn:aws:globalaccelerator::${ACCOUNT}:accelerator/${h(8)}-${h(4)}-${h(4)}-${h(4)}-${h(12)}`,
        dnsName: `a${h(16)}.awsglobalaccelerator.com`, hostedZoneId: 'Z2BJ6XQ5FK7U4H',
        ipSets: [{ ipFamily: 'IPv4', ipAddresses: [`75.2.${parseInt(h(2), 16)}.${parseInt(h(4).slice(2), 16)}`, `99.83.${parseInt(h(6).slice(4), 16)}.${parseInt(h(8).slice(6), 16)}`] }],
      }
    case 'aws:globalaccelerator/listener:Listener':
      return { ...inputs, arn: `${inputs['acceleratorArn']}/listener/${h(8)}` }
    case 'aws:globalaccelerator/endpointGroup:EndpointGroup':
      return { ...inputs, arn: `${inputs['listenerArn']}/endpoint-group/${h(12)}` }
    case 'aws:route53/record:Record':
      return { ...inputs, fqdn: String(inputs['name']).toLowerCase().replace(/\.$/, '') }
    case 'aws:route53/healthCheck:HealthCheck':
      return { ...inputs, arn: `arn:aws:route53:::healthcheck/${id}` }
    case 'pulumi:pulumi:StackReference': {
      // The stage's global stack, as global.ts exports it (listener ARN in Global Accelerator's format).
      const ref = String(inputs['name'])
      const accelerator = `arn:aws:globalaccelerator::${ACCOUNT}:accelerator/${hex(ref, 8)}-${hex(`${ref}1`, 4)}-${hex(`${ref}2`, 4)}-${hex(`${ref}3`, 4)}-${hex(`${ref}4`, 12)}`
      return { name: ref, outputs: { listenerArn: `${accelerator}/listener/${hex(`${ref}l`, 8)}`, stage: ref.split('/').pop()!.replace(/-global$/, '') }, secretOutputNames: [] }
    }
    case 'random:index/randomPassword:RandomPassword':
      // The provider's generated value (deterministic here, so renders are reproducible).
      return { ...inputs, result: hex(`password:${name}`, Number(inputs['length'] ?? 32)).slice(0, Number(inputs['length'] ?? 32)), bcryptHash: `$2a$10$${hex(`bcrypt:${name}`, 53)}` }
    case 'kubernetes:core/v1:Service':
      // An NLB provisioned for a LoadBalancer Service (AWS Load Balancer Controller naming).
      return inputs['spec']?.type === 'LoadBalancer'
        ? { ...inputs, status: { loadBalancer: { ingress: [{ hostname: nlbDnsName(`k8s-${String(inputs['metadata']?.namespace ?? 'default').slice(0, 8)}-${String(inputs['metadata']?.name ?? name).slice(0, 8)}-${h(10)}`, region) }] } } }
        : inputs
    default:
      return type.startsWith('aws:') ? { ...inputs, arn: arn(type.split(':')[1]?.split('/')[0] ?? 'x', `${name}/${id}`) } : inputs
  }
}

/** An NLB's DNS name: `<name>-<16 hex>.elb.<region>.amazonaws.com`. */
function nlbDnsName(lbName: string, region: string): string {
  return `${lbName}-${hex(`nlb:${lbName}`, 16)}.elb.${region}.amazonaws.com`
}

/** A data source answered like AWS would for `region`; unknown tokens fail loudly. */
function mockCall(token: string, args: Record<string, any>, region: string): Record<string, any> {
  switch (token) {
    case 'aws:index/getAvailabilityZones:getAvailabilityZones': {
      const zones = mockZones(region)
      return { names: zones.map(([n]) => n), zoneIds: zones.map(([, z]) => z), state: 'available', id: region }
    }
    case 'aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings': {
      if (args['locationType'] !== 'availability-zone') throw new Error(`mock: getInstanceTypeOfferings answers locationType availability-zone only, got ${args['locationType']}`)
      const types: string[] = (args['filters'] ?? []).find((f: { name: string }) => f.name === 'instance-type')?.values ?? []
      const gaps = notOffered()
      const pairs = mockZones(region).flatMap(([zone]) => types.filter((t) => offered(t, zone, gaps)).map((t) => [t, zone] as const))
      return { instanceTypes: pairs.map(([t]) => t), locations: pairs.map(([, z]) => z), locationTypes: pairs.map(() => 'availability-zone'), id: region }
    }
    case 'aws:ec2/getSubnet:getSubnet': {
      // Existing subnets: the last hex digit of the id picks the AZ.
      const idArg = String(args['id'])
      const zones = mockZones(region)
      const zone = zones[parseInt(idArg.slice(-1), 16) % zones.length]!
      return { id: idArg, availabilityZone: zone[0], availabilityZoneId: zone[1], vpcId: 'vpc-0abc', cidrBlock: '10.0.0.0/24' }
    }
    case 'aws:eks/getAddonVersion:getAddonVersion': {
      const version = MOCK_ADDON_VERSIONS[String(args['kubernetesVersion'])]?.[String(args['addonName'])]
      if (!version) throw new Error(`InvalidParameterException: no versions of add-on ${args['addonName']} for Kubernetes ${args['kubernetesVersion']}`)
      return { ...args, version, id: String(args['addonName']) }
    }
    case 'aws:lb/getHostedZoneId:getHostedZoneId': {
      const zones: Record<string, string> = { 'us-east-1': 'Z26RNL4JYFTOTI', 'eu-west-1': 'Z2IFOLAFXWLO4F', 'ap-northeast-1': 'Z31USIVHYNEOWT' }
      return { id: zones[String(args['region'] ?? region)] ?? 'Z26RNL4JYFTOTI', region }
    }
    case 'aws:lb/getLoadBalancer:getLoadBalancer': {
      const lbName = String(args['name'])
      return { ...args, id: lbName, name: lbName, loadBalancerType: 'network', arn: `arn:aws:elasticloadbalancing:${region}:${ACCOUNT}:loadbalancer/net/${lbName}/${hex(`nlb:${lbName}`, 16)}`, dnsName: nlbDnsName(lbName, region), zoneId: 'Z26RNL4JYFTOTI' }
    }
    case 'aws:index/getCallerIdentity:getCallerIdentity':
      return { accountId: ACCOUNT, arn: `arn:aws:sts::${ACCOUNT}:assumed-role/velox-deploy/ci`, userId: 'AROAEXAMPLE:ci', id: ACCOUNT }
    default:
      throw new Error(`unmocked call ${token}`)
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
      const id = args.type.startsWith('pulumi:providers:') ? `${args.name}_id` : mockId(args.type, args.name, args.inputs)
      // A provider-specific region (e.g. the global stack's us-west-2 accelerator provider) wins.
      const r = String(args.inputs['region'] ?? region)
      const state = mockState(args.type, args.name, id, args.inputs, r)
      resources.push({ type: args.type, name: args.name, inputs: args.inputs, state, id, provider: args.provider, typeChain: '', custom: args.custom ?? true })
      return { id, state }
    },
    call(args) {
      return mockCall(args.token, args.inputs, String(args.inputs['region'] ?? region))
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

const FAILED = Symbol('failed')

export async function runProgram(stack: string, options: RunOptions = {}): Promise<ProgramRun> {
  const config: Record<string, string> = { ...readStackConfig(stack), ...options.overrides, ...options.secrets }
  for (const key of options.remove ?? []) delete config[key]
  process.env['PULUMI_CONFIG'] = JSON.stringify(config)
  process.env['PULUMI_CONFIG_SECRET_KEYS'] = JSON.stringify(Object.keys(options.secrets ?? {}))
  const region = config['aws:region'] ?? 'us-east-1'

  const pulumi = await import('@pulumi/pulumi')
  const resources = await installMocks(stack, region)

  const rejections: unknown[] = []
  // An apply that throws (an offering check, a missing endpoint) rejects its Output: `pulumi up`
  // reports it as the error, and no apply downstream of it ever runs.
  let failed: () => void = () => {}
  const failure = new Promise<typeof FAILED>((resolve) => { failed = () => resolve(FAILED) })
  const onRejection = (err: unknown) => { rejections.push(err); failed() }
  process.on('unhandledRejection', onRejection)
  let error: string | null = null
  const outputs: Record<string, unknown> = {}
  try {
    // index.ts exports the chosen program's outputs as its default export, as Pulumi reads them.
    const entry = await import(pathToFileURL(join(REPO_ROOT, 'infra', 'index.ts')).href) as { default: Record<string, unknown> }
    const program = entry.default
    for (const [key, value] of Object.entries(program)) {
      if (value === undefined) continue
      if (!pulumi.Output.isInstance(value)) { outputs[key] = value; continue }
      const v = await Promise.race([new Promise((resolve) => value.apply((x) => { resolve(x); return x })), failure])
      if (v === FAILED) break
      outputs[key] = v
    }
    if (rejections.length === 0) await Promise.race([pulumi.runtime.disconnect(), failure])
  } catch (err) {
    error = err instanceof Error ? err.message : String(err)
  }
  process.off('unhandledRejection', onRejection)
  // Each resource fed by a failed apply reports it again, wrapped in its property path: keep the cause once.
  if (!error && rejections.length > 0) error = [...new Set(rejections.map((e) => (e instanceof Error ? e.message : String(e)).replace(/^(error serializing property "[^"]+": )+/, '')))].join('\n')

  return { stack, resources: await withTypeChains(resources), outputs, error }
}

/** What a command line of this CLI asks for: `<stack> [velox:key=value ...] [-velox:key ...] [env:NAME=value ...]`. */
export function parseRunArgs(pairs: readonly string[]): { options: RunOptions; env: Record<string, string> } {
  const overrides: Record<string, string> = {}
  const remove: string[] = []
  const env: Record<string, string> = {}
  for (const p of pairs) {
    if (p.startsWith('env:')) { const i = p.indexOf('='); env[p.slice(4, i)] = p.slice(i + 1) }
    else if (p.startsWith('-')) remove.push(p.slice(1))
    else { const i = p.indexOf('='); overrides[p.slice(0, i)] = p.slice(i + 1) }
  }
  const secrets: Record<string, string> = {}
  for (const key of ['velox:cacheAuthToken', 'velox:hfToken', 'velox:peerApiKey']) {
    if (overrides[key] !== undefined) { secrets[key] = overrides[key]; delete overrides[key] }
  }
  return { options: { overrides, remove, secrets }, env }
}

/**
 * Runs programs one after another in this process, each as if in a fresh one: Pulumi's state (its
 * store, rebuilt from the environment of each run) and every module of the program under infra/
 * (outside infra/tools/) are new for each run, so nothing a run leaves in module scope reaches the
 * next; what is shared is the Pulumi SDKs' code, whose loading is most of a run's cost (about 0.8
 * of 1.2 s of CPU). Reads one JSON request a line on stdin (`{"id": n, "args": [stack, ...pairs]}`,
 * pairs as on the command line) and writes `{"id": n, "run": ProgramRun}` a line on stdout. A run
 * that fails ends the process once answered: what it left pending cannot settle into the next run.
 */
export async function serve(): Promise<void> {
  const { registerHooks } = await import('node:module')
  const { createInterface } = await import('node:readline')
  const infra = pathToFileURL(join(REPO_ROOT, 'infra') + '/').href
  const tools = pathToFileURL(join(REPO_ROOT, 'infra', 'tools') + '/').href
  let generation = 0
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context)
      if (!resolved.url.startsWith(infra) || resolved.url.startsWith(tools)) return resolved
      const url = new URL(resolved.url)
      url.search = `?run=${generation}`
      return { ...resolved, url: url.href }
    },
  })
  // A rejection from a run that already failed (and was answered) must not end the process first.
  process.on('unhandledRejection', () => {})
  for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim() === '') continue
    const { id, args } = JSON.parse(line) as { id: number; args: string[] }
    const [stack, ...pairs] = args
    const { options, env } = parseRunArgs(pairs)
    const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
    Object.assign(process.env, env)
    generation++
    ;(globalThis as { globalStore?: unknown }).globalStore = undefined
    let run: ProgramRun
    try {
      run = await runProgram(stack!, options)
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    }
    await new Promise((resolve) => process.stdout.write(JSON.stringify({ id, run }) + '\n', resolve))
    if (run.error !== null) break
  }
  process.exit(0)
}

// CLI: node infra/tools/mock-program.ts <stack> [key=value ...]  -> JSON on stdout;
//      node infra/tools/mock-program.ts --serve                  -> runs as serve() describes.
if (import.meta.main) {
  const [stack, ...pairs] = process.argv.slice(2)
  if (!stack) {
    console.error('usage: node infra/tools/mock-program.ts <stack> [velox:key=value ...] [-velox:key ...] [env:NAME=value ...] | --serve')
    process.exit(2)
  }
  if (stack === '--serve') {
    await serve()
  } else {
    const { options, env } = parseRunArgs(pairs)
    Object.assign(process.env, env)
    const run = await runProgram(stack, options)
    process.stdout.write(JSON.stringify(run))
  }
}
