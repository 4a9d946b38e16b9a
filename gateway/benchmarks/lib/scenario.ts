/**
 * What a scenario is: a name, a setup that starts the processes it needs (through the context, so
 * the runner can stop them), and a measurement that returns rows and pass/fail checks. Adding a
 * scenario is one file in scenarios/ plus one line in scenarios/index.ts.
 */
import type { Interference } from './interference.ts'
import type { ProcessSet } from './processes.ts'
import type { SharedStacks } from './shared-stack.ts'
import { addedLatency, type LatencySummary, type PercentileKey } from './recorder.ts'
import type { TargetCost } from './targets.ts'

export interface BenchOptions {
  /** ~1 minute smoke run instead of the ~4 minute full run. */
  quick: boolean
  /** Extra node flags for every gateway process (before/after comparisons of V8 settings). */
  gatewayNodeArgs: string[]
  /** Arrival rate of the fixed-rate scenario, requests per second. */
  ratePerSecond: number
  /** Entry points, overridable to compare another checkout of the gateway or simulator. */
  gatewayEntry: string
  simulatorEntry: string
  /**
   * Another gateway entry point measured beside `gatewayEntry` in the same run, in the scenarios
   * that support it (cache-hit): an A/B whose rounds interleave, so the machine's drift lands on
   * both alike. Null: no baseline.
   */
  baselineGatewayEntry: string | null
  /**
   * Node/V8 flags for the baseline gateway only, after `gatewayNodeArgs` (`--baseline-node-args`):
   * the same code with and without a flag, side by side in the same rounds.
   */
  baselineNodeArgs: string[]
}

/**
 * Which cores each role runs on; null means unpinned (machines with fewer than 2 cores). The
 * simulator has no core of its own: each scenario places it (see SimulatorOptions.placement).
 */
export interface CorePlan {
  loadGenerator: string | null
  gateway: string | null
  /** Every core, for processes that are meant to spread (multi-worker gateway). */
  all: string | null
}

export interface BenchContext {
  options: BenchOptions
  cores: CorePlan
  /** Processes started through this set are stopped when the scenario ends, however it ends. */
  processes: ProcessSet
  /** A fresh temporary directory for this scenario (configs, scripts). */
  workDir: string
  /** Stacks started once per run and shared by scenarios (see shared-stack.ts). */
  shared: SharedStacks
  log(message: string): void
}

export interface Scenario {
  name: string
  title: string
  /** The question the scenario answers, shown by --list and in the report. */
  description: string
  run(ctx: BenchContext): Promise<Measurement>
}

/** A scenario that cannot run yet because the gateway lacks something; listed, never measured. */
export interface PendingScenario {
  name: string
  title: string
  waitingFor: string
}

export type AddedLatency = Record<PercentileKey | 'max', number>

export interface ResultRow {
  /** direct, gateway, naive-proxy, or a scenario's variant such as gateway-16-upstreams. */
  target: string
  /** What was timed: latency (whole response), ttft (first body byte) or total (stream end). */
  metric: string
  /** Milliseconds. */
  latency: LatencySummary
  requestsPerSecond: number | null
  errors: number
  /** The row this one's `added` latency is measured over (same metric), e.g. direct. */
  addedOver: string | null
  added: AddedLatency | null
  cost: TargetCost | null
  extra: Record<string, number | string>
}

export interface Check {
  label: string
  value: number
  comparison: '<=' | '>='
  limit: number
  unit: string
  pass: boolean
  /** Other processes used enough CPU during the scenario that this verdict may be noise. */
  noisy: boolean
}

/** What a scenario's run returns; the runner adds the identity, timing and error. */
export interface Measurement {
  parameters: Record<string, unknown>
  rows: ResultRow[]
  checks: Check[]
  notes: string[]
}

export interface ScenarioResult extends Measurement {
  name: string
  title: string
  description: string
  durationMs: number
  /** Cores kept busy by other processes (and stolen by the hypervisor) while the scenario ran. */
  interference: Interference
  /** Set when the scenario could not complete; rows may then be partial. */
  error: string | null
  /** Set when the scenario found at run time that the gateway cannot do what it measures yet. */
  skipped: string | null
}

/** Thrown by a scenario that finds the gateway lacks what it measures: reported, not an error. */
export class ScenarioSkipped extends Error {}

export function check(label: string, value: number, comparison: '<=' | '>=', limit: number, unit: string): Check {
  const pass = Number.isFinite(value) && (comparison === '<=' ? value <= limit : value >= limit)
  return { label, value, comparison, limit, unit, pass, noisy: false }
}

/** Fills `added` on each row that has a baseline, from the baseline row of the same metric. */
export function computeAdded(rows: ResultRow[]): ResultRow[] {
  for (const row of rows) {
    if (row.addedOver === null) continue
    const baseline = rows.find((r) => r.target === row.addedOver && r.metric === row.metric)
    if (baseline) row.added = addedLatency(row.latency, baseline.latency)
  }
  return rows
}

/** The row, or null when that target did not run (nginx not installed). */
export function optionalRow(rows: ResultRow[], target: string, metric: string): ResultRow | null {
  return rows.find((r) => r.target === target && r.metric === metric) ?? null
}

export function findRow(rows: ResultRow[], target: string, metric: string): ResultRow {
  const row = rows.find((r) => r.target === target && r.metric === metric)
  if (!row) throw new Error(`no ${metric} row for ${target}`)
  return row
}

/**
 * Warm-up requests for a scenario's own, freshly started processes (16 connections, so a couple
 * of seconds per target). Not enough for a gateway's full steady state (see shared-stack.ts), which
 * is why those scenarios compare processes that were all warmed the same way.
 */
export function warmUpRequests(ctx: BenchContext): number {
  return ctx.options.quick ? 10_000 : 40_000
}

/** Requests that top up the shared, already warm standard stack right before a scenario measures. */
export function topUpRequests(ctx: BenchContext): number {
  return ctx.options.quick ? 5_000 : 15_000
}

/** Interference (cores used by other processes) above which verdicts are flagged as noisy. */
export const NOISY_MACHINE_CORES = 0.25

/**
 * Unrecorded requests at the start of every round. A process that sat idle while the other
 * targets ran answers its first request or two 0.2-0.3 ms slower (cold caches, idle cores): with
 * 100-request rounds that would put 2% cold samples into every target's p99, an artefact of the
 * interleaving itself rather than anything a steady client sees.
 */
export const ROUND_REWARM_REQUESTS = 5

/**
 * Runs `measure` for every item in every round, rotating the order each round, so slow drift of
 * the machine (other tenants, thermal, page cache) lands on every target alike instead of on
 * whichever ran last.
 */
export async function interleaved<T>(rounds: number, items: readonly T[], measure: (item: T, round: number) => Promise<unknown>): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < items.length; i++) await measure(items[(i + round) % items.length]!, round)
  }
}
