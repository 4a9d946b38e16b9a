/**
 * Re-resolves one hostname (A and AAAA) every intervalMs and reports which addresses appeared and
 * which went away, so each address can be its own balanced member (a headless Kubernetes Service
 * lists every vLLM pod). A failed or empty resolution keeps the last known set: a DNS blip must
 * never empty a pool that is serving fine.
 */
import { promises as dnsPromises } from 'node:dns'
import { isIP } from 'node:net'
import { PeriodicTask } from './periodic-task.ts'

/** Addresses for a hostname; rejects when the name cannot be resolved. */
export type ResolveAddresses = (hostname: string) => Promise<readonly string[]>

/**
 * The real resolver: A and AAAA queries through c-ares (node:dns promises), optionally against
 * given servers ("127.0.0.1:5353"). One family failing is fine when the other answers.
 */
export function dnsResolver(opts: { servers?: readonly string[]; timeoutMs?: number; tries?: number } = {}): ResolveAddresses {
  const resolver = new dnsPromises.Resolver({ timeout: opts.timeoutMs ?? 2_000, tries: opts.tries ?? 2 })
  if (opts.servers) resolver.setServers(opts.servers)
  return async (hostname) => {
    if (isIP(hostname) !== 0) return [hostname]
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(hostname), resolver.resolve6(hostname)])
    if (v4.status === 'rejected' && v6.status === 'rejected') throw v4.reason
    return [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])]
  }
}

export interface DnsDiscoveryOptions {
  readonly hostname: string
  readonly intervalMs: number
  /** Called after a resolution that changed the set (and after the first one that found anything). */
  readonly onChange: (added: readonly string[], removed: readonly string[]) => void
  readonly resolve?: ResolveAddresses
  /** A resolution failed or came back empty; the previous addresses stay in force. */
  readonly onError?: (err: unknown) => void
}

export class DnsDiscovery {
  readonly hostname: string
  readonly intervalMs: number
  private readonly resolve: ResolveAddresses
  private readonly onChange: DnsDiscoveryOptions['onChange']
  private readonly onError: (err: unknown) => void
  private known: Set<string> = new Set()
  private readonly task: PeriodicTask

  constructor(opts: DnsDiscoveryOptions) {
    this.hostname = opts.hostname
    this.intervalMs = opts.intervalMs
    this.resolve = opts.resolve ?? dnsResolver()
    this.onChange = opts.onChange
    this.onError = opts.onError ?? (() => {})
    this.task = new PeriodicTask(() => this.resolveOnce(), () => this.intervalMs)
  }

  /** Resolves once now (the returned promise settles after it) and then every intervalMs. */
  start(): Promise<void> {
    return this.task.start()
  }

  stop(): void {
    this.task.stop()
  }

  /** Current addresses, sorted. */
  addresses(): string[] {
    return [...this.known].sort()
  }

  /** One resolution now; concurrent calls share it. */
  refresh(): Promise<void> {
    return this.task.runNow()
  }

  private async resolveOnce(): Promise<void> {
    let found: readonly string[]
    try {
      found = await this.resolve(this.hostname)
    } catch (err) {
      this.onError(err)
      return
    }
    if (found.length === 0) {
      this.onError(new Error(`DNS returned no addresses for ${this.hostname}; keeping ${this.known.size}`))
      return
    }
    const next = new Set(found)
    const added = [...next].filter((a) => !this.known.has(a)).sort()
    const removed = [...this.known].filter((a) => !next.has(a)).sort()
    this.known = next
    if (added.length === 0 && removed.length === 0) return
    try {
      this.onChange(added, removed)
    } catch (err) {
      this.onError(err)
    }
  }
}
