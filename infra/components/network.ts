import * as ec2 from '@pulumi/aws/ec2/index.js'
import { getAvailabilityZonesOutput } from '@pulumi/aws/getAvailabilityZones.js'
import * as pulumi from '@pulumi/pulumi'
import { planSubnets } from '../lib/subnets.ts'
import { checkZones, pickZones, type Offering } from '../lib/zones.ts'

export interface NetworkArgs {
  /** Name of the EKS cluster that will use the subnets (tags for load balancer subnet discovery). */
  readonly clusterName: string
  readonly region: string
  /** Instance types every AZ used must offer (the node types): checked against EC2's per-AZ offerings. */
  readonly instanceTypes: readonly string[]
  /** A new VPC: its CIDR, how many AZs, and whether each AZ gets its own NAT gateway. */
  readonly vpc?: { readonly cidr: string; readonly azCount: number; readonly natGateways: 'single' | 'perAz' }
  /** An existing VPC instead; nothing is created, the ids pass through. */
  readonly existingVpc?: { readonly vpcId: string; readonly privateSubnetIds: readonly string[]; readonly publicSubnetIds: readonly string[] }
}

export interface NetworkOutputs {
  readonly vpcId: pulumi.Output<string>
  /** Node and cache subnets, one per AZ; index 0's AZ also holds the cache primary. */
  readonly privateSubnetIds: pulumi.Output<string>[]
  /** The AZ of each private subnet (same order); every one offers every node instance type. */
  readonly zones: pulumi.Output<string>[]
  /** Load balancer (and NAT) subnets. */
  readonly publicSubnetIds: pulumi.Output<string>[]
}

/**
 * A VPC over at least two AZs: private subnets for nodes and the cache, public subnets for the
 * load balancer, NAT for egress (one per AZ in prod so an AZ loss does not cut the others off).
 */
export class Network extends pulumi.ComponentResource implements NetworkOutputs {
  readonly vpcId: pulumi.Output<string>
  readonly privateSubnetIds: pulumi.Output<string>[]
  readonly zones: pulumi.Output<string>[]
  readonly publicSubnetIds: pulumi.Output<string>[]

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:network:Network', name, {}, opts)
    const offerings = ec2.getInstanceTypeOfferingsOutput({
      locationType: 'availability-zone',
      filters: [{ name: 'instance-type', values: [...args.instanceTypes] }],
    }, { parent: this }).apply((r): Offering[] => r.instanceTypes.map((instanceType, i) => ({ instanceType, zone: r.locations[i]! })))
    const out = args.existingVpc ? existingNetwork(this, args, args.existingVpc, offerings) : newNetwork(this, name, args, offerings)
    this.vpcId = out.vpcId
    this.privateSubnetIds = out.privateSubnetIds
    this.zones = out.zones
    this.publicSubnetIds = out.publicSubnetIds
    this.registerOutputs({ vpcId: this.vpcId, privateSubnetIds: this.privateSubnetIds, zones: this.zones, publicSubnetIds: this.publicSubnetIds })
  }
}

/** Existing subnets pass through once their AZs are known to offer the node types. */
function existingNetwork(parent: pulumi.Resource, args: NetworkArgs, v: NonNullable<NetworkArgs['existingVpc']>, offerings: pulumi.Output<Offering[]>): NetworkOutputs {
  const found = v.privateSubnetIds.map((id) => ec2.getSubnetOutput({ id }, { parent }).availabilityZone)
  const checked = pulumi.all([offerings, pulumi.all(found)]).apply(([o, zones]) => {
    checkZones(args.region, zones, o, args.instanceTypes)
    return zones
  })
  return {
    vpcId: pulumi.output(v.vpcId),
    privateSubnetIds: v.privateSubnetIds.map((id) => checked.apply(() => id)),
    zones: found.map((_, i) => checked.apply((z) => z[i]!)),
    publicSubnetIds: v.publicSubnetIds.map((id) => pulumi.output(id)),
  }
}

function newNetwork(parent: pulumi.Resource, name: string, args: NetworkArgs, offerings: pulumi.Output<Offering[]>): NetworkOutputs {
  const spec = args.vpc
  if (!spec) throw new Error('Network needs either vpc or existingVpc')
  const opts = { parent }
  const plan = planSubnets(spec.cidr, spec.azCount)
  const available = getAvailabilityZonesOutput({ state: 'available', filters: [{ name: 'zone-type', values: ['availability-zone'] }] }, opts)
  // The VPC is laid over the first azCount AZs that offer every node type (not simply a, b, c).
  const azs = { names: pulumi.all([available.names, offerings]).apply(([names, o]) => pickZones(args.region, names, o, args.instanceTypes, spec.azCount)) }
  const clusterTag = { [`kubernetes.io/cluster/${args.clusterName}`]: 'shared' }

  const vpc = new ec2.Vpc(`${name}-vpc`, {
    cidrBlock: spec.cidr, enableDnsHostnames: true, enableDnsSupport: true, tags: { Name: `${name}-vpc` },
  }, opts)
  const igw = new ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: { Name: `${name}-igw` } }, opts)
  const publicRoutes = new ec2.RouteTable(`${name}-public`, {
    vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }], tags: { Name: `${name}-public` },
  }, opts)

  const publicSubnets = plan.map((p) => {
    const az = azs.names.apply((n) => pickAz(n, p.az))
    const subnet = new ec2.Subnet(`${name}-public-${p.az}`, {
      vpcId: vpc.id, cidrBlock: p.publicCidr, availabilityZone: az, mapPublicIpOnLaunch: false,
      tags: { Name: `${name}-public-${p.az}`, 'kubernetes.io/role/elb': '1', ...clusterTag },
    }, opts)
    new ec2.RouteTableAssociation(`${name}-public-${p.az}`, { subnetId: subnet.id, routeTableId: publicRoutes.id }, opts)
    return subnet
  })

  const natCount = spec.natGateways === 'perAz' ? plan.length : 1
  const nats = publicSubnets.slice(0, natCount).map((subnet, i) => {
    const eip = new ec2.Eip(`${name}-nat-${i}`, { domain: 'vpc', tags: { Name: `${name}-nat-${i}` } }, opts)
    return new ec2.NatGateway(`${name}-nat-${i}`, {
      subnetId: subnet.id, allocationId: eip.id, tags: { Name: `${name}-nat-${i}` },
    }, { parent, dependsOn: [igw] })
  })

  const privateSubnets = plan.map((p) => {
    const az = azs.names.apply((n) => pickAz(n, p.az))
    const subnet = new ec2.Subnet(`${name}-private-${p.az}`, {
      vpcId: vpc.id, cidrBlock: p.privateCidr, availabilityZone: az,
      tags: { Name: `${name}-private-${p.az}`, 'kubernetes.io/role/internal-elb': '1', ...clusterTag },
    }, opts)
    const nat = nats[p.az % nats.length]!
    const routes = new ec2.RouteTable(`${name}-private-${p.az}`, {
      vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }], tags: { Name: `${name}-private-${p.az}` },
    }, opts)
    new ec2.RouteTableAssociation(`${name}-private-${p.az}`, { subnetId: subnet.id, routeTableId: routes.id }, opts)
    return subnet
  })

  return {
    vpcId: vpc.id,
    privateSubnetIds: privateSubnets.map((s) => s.id),
    zones: privateSubnets.map((s) => s.availabilityZone),
    publicSubnetIds: publicSubnets.map((s) => s.id),
  }
}

function pickAz(names: string[], index: number): string {
  const az = names[index]
  if (!az) throw new Error(`the region has ${names.length} available AZs; azCount asks for at least ${index + 1}`)
  return az
}
