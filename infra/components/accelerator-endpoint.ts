import * as globalaccelerator from '@pulumi/aws/globalaccelerator/index.js'
import * as lb from '@pulumi/aws/lb/index.js'
import * as pulumi from '@pulumi/pulumi'

export interface AcceleratorEndpointArgs {
  /** The global stack's listener. */
  readonly listenerArn: pulumi.Input<string>
  readonly region: string
  /** The region's NLB DNS name (what the gateway Service reports). */
  readonly loadBalancerHostname: pulumi.Input<string>
  readonly tls: boolean
  /** Share of the accelerator's traffic for this region that it accepts (0-100); 0 drains it. */
  readonly trafficDialPercentage: number
}

/**
 * The NLB's name from its DNS name: `<name>-<16 hex>.elb.<region>.amazonaws.com`. An NLB name has
 * at most 32 characters, letters, digits and hyphens.
 */
export function nlbNameFromHostname(hostname: string): string {
  const m = /^([a-z0-9-]{1,32})-[0-9a-f]{16}\.elb\.[a-z0-9-]+\.amazonaws\.com$/i.exec(hostname)
  if (!m) throw new Error(`"${hostname}" is not a Network Load Balancer DNS name (<name>-<16 hex>.elb.<region>.amazonaws.com)`)
  return m[1]!
}

/**
 * This region's endpoint group on the global accelerator, pointing at its NLB. For NLB endpoints
 * Global Accelerator takes health from the load balancer (an NLB with no healthy target is
 * unhealthy): the NLB target group's /readyz check decides, and the group's own health-check
 * settings apply to EC2 and EIP endpoints only. They are still set to /readyz so the intent holds
 * if the endpoint type changes.
 */
export class AcceleratorEndpoint extends pulumi.ComponentResource {
  readonly endpointGroupArn: pulumi.Output<string>
  readonly loadBalancerArn: pulumi.Output<string>

  constructor(name: string, args: AcceleratorEndpointArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:global:AcceleratorEndpoint', name, {}, opts)
    const parent = { parent: this }
    const nlb = lb.getLoadBalancerOutput({ name: pulumi.output(args.loadBalancerHostname).apply(nlbNameFromHostname) }, parent)
    const arn = pulumi.all([nlb.arn, nlb.dnsName, nlb.loadBalancerType, args.loadBalancerHostname]).apply(([a, dns, type, host]) => {
      if (type !== 'network') throw new Error(`load balancer ${a} is ${type}, expected network`)
      if (dns.toLowerCase() !== host.toLowerCase()) throw new Error(`load balancer ${a} answers ${dns}, not ${host}`)
      return a
    })
    const group = new globalaccelerator.EndpointGroup(`${name}-group`, {
      listenerArn: args.listenerArn,
      endpointGroupRegion: args.region,
      healthCheckProtocol: args.tls ? 'HTTPS' : 'HTTP',
      healthCheckPort: args.tls ? 443 : 80,
      healthCheckPath: '/readyz',
      healthCheckIntervalSeconds: 10,
      thresholdCount: 3,
      trafficDialPercentage: args.trafficDialPercentage,
      endpointConfigurations: [{ endpointId: arn, weight: 128 }],
    }, parent)
    this.endpointGroupArn = group.arn
    this.loadBalancerArn = arn
    this.registerOutputs({ endpointGroupArn: this.endpointGroupArn, loadBalancerArn: this.loadBalancerArn })
  }
}
