/**
 * The routing snapshot: which members serve which model, and the balancer for each group of them.
 * Built once from config; a config reload builds a new Router while in-flight requests finish on the
 * old one. The only later changes are DNS-discovered members joining or leaving, and those replace
 * member arrays (copy-on-write) instead of editing them, so an array a request holds stays whole.
 *
 * Resolution of a public model name: an alias first; then the upstreams that list the model
 * explicitly; then, for a name nobody lists, the upstreams that serve "*"; else null (unknown model).
 */
import { isIP } from 'node:net'
import { Admission, type AdmissionVerdict, type HeldCallback } from './admission.ts'
import { type Balancer, createBalancer } from './balancer.ts'
import type { RoutedUpstream, RoutingConfig } from './config.ts'
import { HedgeDelay } from './hedge.ts'
import { Member, type MemberInit } from './member.ts'
import { RetryPolicy } from './retry-policy.ts'
import type { Random } from './rng.ts'
import type { RouteRequest } from './route-request.ts'
import { NORMAL_CLASS } from '../upstream/fair-queue.ts'

export type MemberFactory<D> = (init: MemberInit) => Member<D>

export interface RouterOptions<D> {
  /** Creates each member with its upstream (what sends requests to init.origin). */
  readonly createMember: MemberFactory<D>
  readonly random?: Random
  readonly nowMs?: number
  /** Share of the saturation hold and threshold each priority class may use (index: PRIORITY_CLASS); all 1 when absent. */
  readonly queueShares?: readonly number[]
}

/** Members that serve one (model, upstream set), with the balancer and hedge timing that keep state for them. */
export class MemberGroup<D> {
  readonly upstreamNames: ReadonlySet<string>
  members: readonly Member<D>[]
  readonly balancer: Balancer
  readonly hedge: HedgeDelay
  /** Admission control from saturation; null unless the inference-aware balancer has a queue threshold. */
  readonly admission: Admission | null

  constructor(upstreamNames: ReadonlySet<string>, members: readonly Member<D>[], balancer: Balancer, hedge: HedgeDelay, admission: Admission | null = null) {
    this.upstreamNames = upstreamNames
    this.members = members
    this.balancer = balancer
    this.hedge = hedge
    this.admission = admission
  }
}

/** What a public model name resolves to; the same object for every request naming it. */
export class Resolution<D = unknown> {
  /** Model id to send upstream (differs from the public name for an alias). */
  readonly model: string
  readonly group: MemberGroup<D>

  constructor(model: string, group: MemberGroup<D>) {
    this.model = model
    this.group = group
  }

  /** Current members; a new array after a DNS change, never one edited in place. */
  get members(): readonly Member<D>[] {
    return this.group.members
  }

  /**
   * Hedge timing for these members: record each attempt's time to first byte with
   * `hedge.record(ms, now)`; `hedge.delayMs(now)` is null when no hedge should be sent.
   */
  get hedge(): HedgeDelay {
    return this.group.hedge
  }
}

/** Unknown names routed to "*" upstreams get a cached Resolution, up to this many names. */
const WILDCARD_CACHE_LIMIT = 1024
const WILDCARD_CACHE_KEY_LIMIT = 256

export class Router<D = unknown> {
  readonly routing: RoutingConfig
  readonly upstreams: readonly RoutedUpstream[]
  readonly retry: RetryPolicy
  private readonly createMember: MemberFactory<D>
  private readonly byName: ReadonlyMap<string, Resolution<D>>
  private readonly groups: readonly MemberGroup<D>[]
  private readonly wildcardGroup: MemberGroup<D> | null
  private readonly wildcardResolutions = new Map<string, Resolution<D>>()
  private readonly modelList: readonly string[]
  private allMembers: readonly Member<D>[]

  constructor(upstreams: readonly RoutedUpstream[], routing: RoutingConfig, opts: RouterOptions<D>) {
    this.routing = routing
    this.upstreams = upstreams
    this.retry = new RetryPolicy(routing.retry)
    this.createMember = opts.createMember
    const nowMs = opts.nowMs ?? 0

    const membersOf = new Map<string, Member<D>[]>()
    for (const u of upstreams) {
      membersOf.set(u.name, usesDnsDiscovery(u) ? [] : [this.createMember(memberInit(u, null, routing, nowMs))])
    }
    this.allMembers = Object.freeze(upstreams.flatMap((u) => membersOf.get(u.name)!))

    const groups = new Map<string, MemberGroup<D>>()
    const groupFor = (names: readonly string[]): MemberGroup<D> => {
      const key = [...names].sort().join('\0')
      let g = groups.get(key)
      if (g === undefined) {
        const members = Object.freeze(upstreams.filter((u) => names.includes(u.name)).flatMap((u) => membersOf.get(u.name)!))
        const ia = routing.inferenceAware
        const admission = routing.balancer === 'inference-aware' && ia.admission.queueThreshold > 0 && ia.metrics.enabled ? new Admission(ia.admission, ia.metrics.staleAfterMs, opts.queueShares) : null
        g = new MemberGroup<D>(new Set(names), members, createBalancer(routing.balancer, { random: opts.random, inferenceAware: ia }), new HedgeDelay(routing.hedge), admission)
        groups.set(key, g)
      }
      return g
    }

    const wildcardNames = upstreams.filter((u) => u.models.includes('*')).map((u) => u.name)
    const explicitNames = (model: string): string[] => upstreams.filter((u) => u.models.includes(model)).map((u) => u.name)
    const byName = new Map<string, Resolution<D>>()
    const resolutions = new Map<MemberGroup<D>, Map<string, Resolution<D>>>()
    const resolutionFor = (model: string, group: MemberGroup<D>): Resolution<D> => {
      let perGroup = resolutions.get(group)
      if (perGroup === undefined) resolutions.set(group, (perGroup = new Map()))
      let r = perGroup.get(model)
      if (r === undefined) perGroup.set(model, (r = Object.freeze(new Resolution(model, group))))
      return r
    }

    const models = new Set<string>()
    for (const u of upstreams) for (const m of u.models) if (m !== '*') models.add(m)
    for (const model of models) byName.set(model, resolutionFor(model, groupFor(explicitNames(model))))
    for (const [alias, target] of Object.entries(routing.aliases)) {
      const serving = explicitNames(target.model)
      const candidates = serving.length > 0 ? serving : wildcardNames
      const names = target.upstreams
        ? target.upstreams.filter((n) => serving.includes(n) || wildcardNames.includes(n))
        : candidates
      byName.set(alias, resolutionFor(target.model, groupFor(names)))
    }
    this.byName = byName
    this.wildcardGroup = wildcardNames.length > 0 ? groupFor(wildcardNames) : null
    this.groups = [...groups.values()]
    this.modelList = Object.freeze([...new Set([...models, ...Object.keys(routing.aliases)])].sort())
  }

  /** null: no upstream serves this name (404 GW_ERR_MODEL_NOT_FOUND). */
  resolve(publicModel: string): Resolution<D> | null {
    const r = this.byName.get(publicModel)
    if (r !== undefined) return r
    if (this.wildcardGroup === null) return null
    let w = this.wildcardResolutions.get(publicModel)
    if (w === undefined) {
      w = new Resolution(publicModel, this.wildcardGroup)
      // Only short names are remembered: the key is client-chosen.
      if (this.wildcardResolutions.size < WILDCARD_CACHE_LIMIT && publicModel.length <= WILDCARD_CACHE_KEY_LIMIT) this.wildcardResolutions.set(publicModel, w)
    }
    return w
  }

  /**
   * A member for one attempt, or null when none is available (503 GW_ERR_NO_HEALTHY_UPSTREAM).
   * `exclude`: members this request already tried. Call member.onStart(nowMs) on the result.
   */
  pick(resolution: Resolution<D>, affinityKey: string | null, exclude: ReadonlySet<Member<D>> | null, nowMs: number, request: RouteRequest | null = null): Member<D> | null {
    const group = resolution.group
    return group.balancer.pick(group.members, affinityKey, exclude, nowMs, request)
  }

  /**
   * Admission control before the first pick: 'admit' (also whenever admission is off), 'hold'
   * (then call `hold`) or 'shed' (503 GW_ERR_UPSTREAMS_SATURATED).
   */
  admit(resolution: Resolution<D>, request: RouteRequest | null, nowMs: number): AdmissionVerdict {
    const group = resolution.group
    return group.admission === null ? 'admit' : group.admission.decide(group.members, nowMs, request?.priority ?? NORMAL_CLASS)
  }

  /** Holds a request admission said to hold; `callback(true)` when it may go on, `(false)` when shed. */
  hold(resolution: Resolution<D>, callback: HeldCallback, request: RouteRequest | null): void {
    const admission = resolution.group.admission
    if (admission === null) callback(true)
    else admission.hold(callback, request?.priority ?? NORMAL_CLASS, request?.tenant ?? 'default')
  }

  /** After fresh pod metrics: lets held requests go where a member has room again. */
  releaseHeld(nowMs: number): void {
    for (const g of this.groups) if (g.admission !== null && g.admission.heldCount > 0) g.admission.release(g.members, nowMs)
  }

  /** Ends every hold: shed (shutting down), or admitted (a reload replaced this router). */
  endHolds(admitted: boolean): void {
    for (const g of this.groups) g.admission?.endAll(admitted)
  }

  /** Public model names for /v1/models: every explicitly served model and every alias, sorted. */
  models(): readonly string[] {
    return this.modelList
  }

  /** Every member, e.g. for the active health checker and for closing upstreams. */
  members(): readonly Member<D>[] {
    return this.allMembers
  }

  /** For /readyz: can any request be routed at all? */
  anyAvailable(nowMs: number): boolean {
    for (const m of this.allMembers) if (m.available(nowMs)) return true
    return false
  }

  /**
   * Adds a DNS-discovered address of `upstreamName` as a member. Returns it, or null when the
   * upstream is unknown or the address is already a member.
   */
  addMember(upstreamName: string, address: string, nowMs = 0): Member<D> | null {
    const upstream = this.upstreams.find((u) => u.name === upstreamName)
    if (upstream === undefined) return null
    const name = `${upstreamName}@${address}`
    if (this.allMembers.some((m) => m.name === name)) return null
    const member = this.createMember(memberInit(upstream, address, this.routing, nowMs))
    this.allMembers = Object.freeze([...this.allMembers, member])
    for (const g of this.groups) if (g.upstreamNames.has(upstreamName)) g.members = Object.freeze([...g.members, member])
    return member
  }

  /**
   * Removes a DNS-discovered member: it is marked draining (no new requests) and dropped from every
   * group. Returns it so the caller can close its upstream once `inFlight` reaches 0.
   */
  removeMember(upstreamName: string, address: string): Member<D> | null {
    const name = `${upstreamName}@${address}`
    const member = this.allMembers.find((m) => m.name === name)
    if (member === undefined) return null
    member.draining = true
    this.allMembers = Object.freeze(this.allMembers.filter((m) => m !== member))
    for (const g of this.groups) if (g.members.includes(member)) g.members = Object.freeze(g.members.filter((m) => m !== member))
    return member
  }
}

export function usesDnsDiscovery(u: RoutedUpstream): boolean {
  return u.discovery?.dns === true && isIP(unbracket(new URL(u.url).hostname)) === 0
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** Member identity and address for an upstream, or for one resolved address of it. */
export function memberInit(u: RoutedUpstream, address: string | null, routing: RoutingConfig, nowMs: number): MemberInit {
  const url = new URL(u.url)
  const basePath = url.pathname.replace(/\/+$/, '')
  let origin = url.origin
  if (address !== null) {
    const port = url.port || (url.protocol === 'https:' ? '443' : '80')
    origin = `${url.protocol}//${isIP(address) === 6 ? `[${address}]` : address}:${port}`
  }
  return {
    name: address === null ? u.name : `${u.name}@${address}`,
    upstreamName: u.name,
    origin,
    basePath,
    host: url.host,
    weight: u.weight,
    priority: u.priority,
    ewmaDecayMs: routing.ewmaDecayMs,
    outlier: routing.outlier,
    nowMs,
    pace: routing.inferenceAware.pace,
  }
}
