/**
 * Connects DnsDiscovery to a Router: one discovery per upstream with `discovery.dns`, each address
 * becoming a member. Removed members are handed back so their upstreams can be closed once idle.
 */
import { dnsResolver, DnsDiscovery, type ResolveAddresses } from './dns-discovery.ts'
import type { Member } from './member.ts'
import { type Router, usesDnsDiscovery } from './router.ts'

export interface DnsBindingOptions<D> {
  readonly resolve?: ResolveAddresses
  /** A member left (its address is gone from DNS); close its upstream when `inFlight` is 0. */
  readonly onRemoved?: (member: Member<D>) => void
  readonly onAdded?: (member: Member<D>) => void
  readonly onError?: (upstreamName: string, err: unknown) => void
  readonly now?: () => number
}

export interface DnsBinding {
  /** Settles when every upstream has had its first resolution (successful or not). */
  readonly ready: Promise<void>
  /** Resolves every discovered upstream now. */
  refresh(): Promise<void>
  stop(): void
}

export function bindDnsDiscovery<D>(router: Router<D>, opts: DnsBindingOptions<D> = {}): DnsBinding {
  const now = opts.now ?? (() => performance.now())
  const discoveries: DnsDiscovery[] = []
  for (const upstream of router.upstreams) {
    if (!usesDnsDiscovery(upstream)) continue
    const hostname = new URL(upstream.url).hostname
    discoveries.push(
      new DnsDiscovery({
        hostname,
        intervalMs: upstream.discovery?.intervalMs ?? 5_000,
        resolve: opts.resolve ?? (upstream.discovery?.servers !== undefined ? dnsResolver({ servers: upstream.discovery.servers }) : undefined),
        onError: (err) => opts.onError?.(upstream.name, err),
        onChange: (added, removed) => {
          for (const address of removed) {
            const m = router.removeMember(upstream.name, address)
            if (m !== null) opts.onRemoved?.(m)
          }
          for (const address of added) {
            const m = router.addMember(upstream.name, address, now())
            if (m !== null) opts.onAdded?.(m)
          }
        },
      }),
    )
  }
  const ready = Promise.all(discoveries.map((d) => d.start())).then(() => undefined)
  return {
    ready,
    refresh: () => Promise.all(discoveries.map((d) => d.refresh())).then(() => undefined),
    stop: () => {
      for (const d of discoveries) d.stop()
    },
  }
}
