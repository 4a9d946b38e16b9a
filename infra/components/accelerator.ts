import * as globalaccelerator from '@pulumi/aws/globalaccelerator/index.js'
import * as route53 from '@pulumi/aws/route53/index.js'
import * as pulumi from '@pulumi/pulumi'

export interface GlobalAcceleratorArgs {
  /** Public name clients use; aliased to the accelerator. */
  readonly domain: string
  readonly hostedZoneId: string
  /** The listener port the regional NLBs listen on (443 with TLS, 80 without). */
  readonly port: number
}

/**
 * AWS Global Accelerator: two static anycast IPv4 addresses announced from every AWS edge, one
 * TCP listener, and `<domain>` aliased to it. Each regional stack adds its own endpoint group
 * (components/accelerator-endpoint.ts); the accelerator moves new connections away from a region
 * whose NLB has no healthy target within seconds, with no DNS cache in the way. The provider must
 * be in us-west-2, where the Global Accelerator API lives.
 */
export class GlobalAccelerator extends pulumi.ComponentResource {
  readonly listenerArn: pulumi.Output<string>
  readonly dnsName: pulumi.Output<string>
  readonly staticIps: pulumi.Output<string[]>

  constructor(name: string, args: GlobalAcceleratorArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:global:GlobalAccelerator', name, {}, opts)
    const parent = { parent: this }
    const accelerator = new globalaccelerator.Accelerator(`${name}-ga`, {
      name,
      ipAddressType: 'IPV4',
      enabled: true,
    }, parent)
    const listener = new globalaccelerator.Listener(`${name}-listener`, {
      acceleratorArn: accelerator.arn,
      protocol: 'TCP',
      portRanges: [{ fromPort: args.port, toPort: args.port }],
      // Long-lived keep-alive and streaming connections are per TCP flow anyway; NONE spreads
      // new connections by 5-tuple, which is what moves them fastest after a failover.
      clientAffinity: 'NONE',
    }, parent)
    new route53.Record(`${name}-alias`, {
      zoneId: args.hostedZoneId,
      name: args.domain,
      type: 'A',
      aliases: [{ name: accelerator.dnsName, zoneId: accelerator.hostedZoneId, evaluateTargetHealth: false }],
    }, parent)
    this.listenerArn = listener.arn
    this.dnsName = accelerator.dnsName
    this.staticIps = accelerator.ipSets.apply((sets) => sets.flatMap((s) => s.ipAddresses ?? []))
    this.registerOutputs({ listenerArn: this.listenerArn, dnsName: this.dnsName, staticIps: this.staticIps })
  }
}
