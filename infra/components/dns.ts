import * as lb from '@pulumi/aws/lb/index.js'
import * as route53 from '@pulumi/aws/route53/index.js'
import * as pulumi from '@pulumi/pulumi'

export interface RegionalDnsArgs {
  /** Existing hosted zone that owns the domain. */
  readonly hostedZoneId: string
  /** The public name, e.g. api.velox.example.com (regional names hang off it). */
  readonly domain: string
  /** The latency-routed name every region answers for: the domain itself, or latency.<domain> when an accelerator owns the domain. */
  readonly latencyName: string
  readonly region: string
  /** The region's NLB DNS name. */
  readonly loadBalancerHostname: pulumi.Input<string>
  /** The listener speaks TLS (HTTPS health check on 443) or plain HTTP on 80. */
  readonly tls: boolean
  /** Seconds between checks (10 or 30) and failures before the region drops out. */
  readonly intervalSeconds: 10 | 30
  readonly failureThreshold: number
}

/** The per-region name peers use as a fallback upstream: `<region>.<domain>`. */
/** The latency-routed DNS path beside a Global Accelerator that owns `<domain>`. */
export function latencyName(domain: string): string {
  return `latency.${domain}`
}

export function regionalName(region: string, domain: string): string {
  return `${region}.${domain}`
}

/**
 * The region's entry in the latency-routed name (set identifier = region) guarded by a Route 53
 * health check on the gateway's /readyz through the NLB: a region whose gateways are not ready
 * drops out of DNS and clients resolve to the next-lowest-latency region. Also a plain regional
 * name that peers use as their fallback upstream.
 */
export class RegionalDns extends pulumi.ComponentResource {
  readonly healthCheckId: pulumi.Output<string>
  readonly latencyRecordFqdn: pulumi.Output<string>
  readonly regionalFqdn: pulumi.Output<string>

  constructor(name: string, args: RegionalDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:dns:RegionalDns', name, {}, opts)
    const parent = { parent: this }
    const nlbZone = lb.getHostedZoneIdOutput({ loadBalancerType: 'network', region: args.region }, parent)

    const check = new route53.HealthCheck(`${name}-readyz`, {
      type: args.tls ? 'HTTPS' : 'HTTP',
      fqdn: args.loadBalancerHostname,
      port: args.tls ? 443 : 80,
      resourcePath: '/readyz',
      requestInterval: args.intervalSeconds,
      failureThreshold: args.failureThreshold,
      measureLatency: true,
      ...(args.tls ? { enableSni: true } : {}),
      tags: { Name: `${name}-readyz` },
    }, parent)

    const alias = { name: args.loadBalancerHostname, zoneId: nlbZone.id, evaluateTargetHealth: true }
    const latency = new route53.Record(`${name}-latency`, {
      zoneId: args.hostedZoneId,
      name: args.latencyName,
      type: 'A',
      setIdentifier: args.region,
      latencyRoutingPolicies: [{ region: args.region }],
      healthCheckId: check.id,
      aliases: [alias],
    }, parent)
    const regional = new route53.Record(`${name}-regional`, {
      zoneId: args.hostedZoneId,
      name: regionalName(args.region, args.domain),
      type: 'A',
      aliases: [alias],
    }, parent)

    this.healthCheckId = check.id
    this.latencyRecordFqdn = latency.fqdn
    this.regionalFqdn = regional.fqdn
    this.registerOutputs({ healthCheckId: this.healthCheckId, latencyRecordFqdn: this.latencyRecordFqdn, regionalFqdn: this.regionalFqdn })
  }
}
