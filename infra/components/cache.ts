import * as ec2 from '@pulumi/aws/ec2/index.js'
import * as elasticache from '@pulumi/aws/elasticache/index.js'
import * as pulumi from '@pulumi/pulumi'

export const CACHE_PORT = 6379

export interface CacheArgs {
  /** ElastiCache replication group id (<= 40 chars, lowercase). */
  readonly replicationGroupId: string
  readonly vpcId: pulumi.Input<string>
  /** Private subnets, one per AZ: replicas land in different AZs. */
  readonly subnetIds: pulumi.Input<string>[]
  /** The AZs of the compute, first one first: the primary is placed in zones[0], replicas in the next ones. */
  readonly zones: pulumi.Input<string>[]
  /** Security groups allowed to connect (the nodes'). */
  readonly clientSecurityGroupIds: pulumi.Input<string>[]
  readonly nodeType: string
  /** 1 = single node; >= 2 = primary + replicas with automatic failover across AZs. */
  readonly nodes: number
  readonly engineVersion: string
  /** AUTH token (secret); absent = TLS without AUTH. */
  readonly authToken?: pulumi.Input<string>
  /** Daily snapshots kept (0 disables). */
  readonly snapshotRetentionDays: number
}

/** Parameters for a pure cache: evict least-recently-used keys instead of refusing writes. */
export const CACHE_PARAMETERS: readonly { name: string; value: string }[] = [
  { name: 'maxmemory-policy', value: 'allkeys-lru' },
  // Evict and expire in a background thread: a large eviction never stalls a read.
  { name: 'lazyfree-lazy-eviction', value: 'yes' },
  { name: 'lazyfree-lazy-expire', value: 'yes' },
  // Half-open client connections are found within a minute.
  { name: 'tcp-keepalive', value: '60' },
]

/** One AZ per cache node: the primary in the compute's first AZ, each replica in the next. */
export function cacheZones<T>(zones: readonly T[], nodes: number): T[] {
  if (zones.length === 0) throw new Error('the cache needs at least one AZ')
  return Array.from({ length: nodes }, (_, i) => zones[i % zones.length]!)
}

export function parameterFamily(engineVersion: string): string {
  return `valkey${engineVersion.split('.')[0]}`
}

/**
 * Valkey replication group for the gateway's shared cache and limits: TLS required in transit,
 * encrypted at rest, Multi-AZ with automatic failover whenever it has a replica.
 */
export class Cache extends pulumi.ComponentResource {
  readonly primaryEndpoint: pulumi.Output<string>
  /** Reader endpoint (replicas); equals the primary's node when there are none. */
  readonly readerEndpoint: pulumi.Output<string>
  readonly port: number
  readonly tls: boolean
  readonly authToken: boolean
  readonly securityGroupId: pulumi.Output<string>

  constructor(name: string, args: CacheArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:cache:Cache', name, {}, opts)
    const parent = { parent: this }
    const replicated = args.nodes >= 2

    const sg = new ec2.SecurityGroup(`${name}-sg`, {
      vpcId: args.vpcId,
      description: 'Valkey: TLS clients from the cluster nodes only',
      ingress: [{ protocol: 'tcp', fromPort: CACHE_PORT, toPort: CACHE_PORT, securityGroups: args.clientSecurityGroupIds, description: 'nodes' }],
      egress: [],
      tags: { Name: `${name}-sg` },
    }, parent)
    const subnets = new elasticache.SubnetGroup(`${name}-subnets`, {
      subnetIds: args.subnetIds, description: 'private subnets', tags: { Name: `${name}-subnets` },
    }, parent)
    const params = new elasticache.ParameterGroup(`${name}-params`, {
      family: parameterFamily(args.engineVersion), description: 'velox cache: LRU eviction', parameters: [...CACHE_PARAMETERS],
    }, parent)
    const group = new elasticache.ReplicationGroup(`${name}-valkey`, {
      replicationGroupId: args.replicationGroupId,
      description: 'velox gateway cache and limits',
      engine: 'valkey',
      engineVersion: args.engineVersion,
      nodeType: args.nodeType,
      port: CACHE_PORT,
      numCacheClusters: args.nodes,
      // The first AZ gets the primary (the gateway reaches it in-AZ there); creation order only:
      // after a failover the primary stays wherever ElastiCache promoted it.
      preferredCacheClusterAzs: cacheZones(args.zones, args.nodes),
      automaticFailoverEnabled: replicated,
      multiAzEnabled: replicated,
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      ...(args.authToken !== undefined ? { authToken: args.authToken } : {}),
      parameterGroupName: params.name,
      subnetGroupName: subnets.name,
      securityGroupIds: [sg.id],
      snapshotRetentionLimit: args.snapshotRetentionDays,
      autoMinorVersionUpgrade: true,
      tags: { Name: `${name}-valkey` },
    }, parent)

    this.primaryEndpoint = group.primaryEndpointAddress.apply((h) => {
      if (!h) throw new Error(`ElastiCache replication group ${args.replicationGroupId} reported no primary endpoint`)
      return h
    })
    this.readerEndpoint = group.readerEndpointAddress
    this.port = CACHE_PORT
    this.tls = true
    this.authToken = args.authToken !== undefined
    this.securityGroupId = sg.id
    this.registerOutputs({ primaryEndpoint: this.primaryEndpoint, readerEndpoint: this.readerEndpoint, securityGroupId: this.securityGroupId })
  }
}
