/** Routing and resilience: model resolution, member choice, breakers, retries, health, discovery. */
export { createBalancer, type Balancer, type BalancerOptions } from './balancer.ts'
export { Breaker, BreakerState, type BreakerStateValue } from './breaker.ts'
export {
  BALANCER_KINDS,
  FAILURE_KINDS,
  RoutingConfigSchema,
  UpstreamDiscoverySchema,
  routingIssues,
  type AliasConfig,
  type BalancerKind,
  type FailureKind,
  type HealthConfig,
  type HedgeConfig,
  type InferenceAwareConfig,
  type ScorerWeights,
  type AdmissionConfig,
  InferenceAwareSchema,
  type OutlierConfig,
  type RetryConfig,
  type RoutedUpstream,
  type RoutingConfig,
  type RoutingConfigInput,
  type RoutingIssue,
  type UpstreamDiscovery,
} from './config.ts'
export { Admission, type AdmissionVerdict, type HeldCallback } from './admission.ts'
export { InferenceAwareBalancer } from './balancer-inference-aware.ts'
export { PodLoad, parseVllmMetrics, type PodReport } from './pod-load.ts'
export { PodMetricsScraper, type FetchMetrics, type PodMetricsScraperOptions } from './pod-metrics-scraper.ts'
export { prefixBlocks } from './prefix-hash.ts'
export { PrefixIndex } from './prefix-index.ts'
export { DEBUG_HEADER, ROUTE_HEADER, RouteRequest, routeRequestFor } from './route-request.ts'
export { PickSignals, SCORERS, boundedLoadFilter, type Filter, type Scorer, type ScorerName } from './scorers.ts'
export { bindDnsDiscovery, type DnsBinding, type DnsBindingOptions } from './dns-binding.ts'
export { DnsDiscovery, dnsResolver, type DnsDiscoveryOptions, type ResolveAddresses } from './dns-discovery.ts'
export { PeakEwma } from './ewma.ts'
export { HedgeDelay } from './hedge.ts'
export { LatencyQuantile, type LatencyQuantileOptions } from './latency-quantile.ts'
export { ActiveHealthChecker, type HealthCheckerOptions, type Probe } from './health-checker.ts'
export { Member, type MemberInit } from './member.ts'
export { RetryBudget, type RetryBudgetOptions } from './retry-budget.ts'
export { RetryPolicy } from './retry-policy.ts'
export { seededRandom, type Random } from './rng.ts'
export { MemberGroup, Resolution, Router, memberInit, usesDnsDiscovery, type MemberFactory, type RouterOptions } from './router.ts'
