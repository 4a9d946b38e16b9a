/**
 * Pod sizes derived from the node's instance type. Pure.
 *
 * The gateway runs one pod per node (host networking). Its memory is a sum over processes: with
 * `server.workers` > 1 a primary forks that many workers, and each worker holds its own in-memory
 * cache tier (`cache.maxBytes`) on top of its baseline. The baseline numbers were measured on the
 * gateway itself (VELOX_WORKERS=1/2/4, 64 connections of wrk for 15 s, RSS summed over the
 * processes): about 150 MB per idle worker, 180 MB after load with a small cache, and a primary of
 * about 110 MB. The constants below round those up.
 */
import { instanceType } from './instance-types.ts'

const MiB = 1024 * 1024
/** RSS of one worker under load, without its cache entries (measured ~180 MB; rounded up). */
export const WORKER_BASE_MIB = 224
/** The primary that forks and supervises the workers (measured ~110 MB). */
export const PRIMARY_MIB = 160
/** Streaming buffers, TLS and GC headroom per worker on top of the baseline. */
export const WORKER_HEADROOM_MIB = 96
/** Largest in-memory cache tier per worker: Valkey holds the shared tier, memory is only L1. */
export const MAX_CACHE_MIB_PER_WORKER = 256
export const MIN_CACHE_MIB_PER_WORKER = 32

/** Memory per vCPU of the instance families the platform uses (GiB). */
const GIB_PER_VCPU: Readonly<Record<string, number>> = { c7gn: 2, c6gn: 2, c6in: 2, c7g: 2, c6i: 2, m7g: 4, m6i: 4, g6: 4, g6e: 8, p5: 2048 / 192, p5e: 2048 / 192 }

export function memoryGiB(type: string): number {
  const info = instanceType(type)
  const family = type.split('.')[0] ?? ''
  const ratio = GIB_PER_VCPU[family]
  if (!info || ratio === undefined) throw new Error(`no memory size known for instance type "${type}"`)
  return info.vcpus * ratio
}

/**
 * What the kubelet, the OS and the node DaemonSets (VPC CNI, kube-proxy, pod identity agent,
 * device plugin) keep: EKS's kube-reserved formula plus the eviction threshold, rounded up.
 */
export function nodeReserved(vcpus: number, memGiB: number): { cpuMillis: number; memMiB: number } {
  const cpuMillis = vcpus <= 2 ? 350 : vcpus <= 8 ? 500 : 1000
  const memMiB = 1024 + Math.ceil(memGiB * 1024 * 0.04)
  return { cpuMillis, memMiB }
}

export interface GatewaySizing {
  /** server.workers: always explicit (0 would mean one per core of the node, not of the pod). */
  readonly workers: number
  /** cache.maxBytes per worker. */
  readonly cacheMaxBytes: number
  /** CPU request (the HPA's 100%) and memory request = limit. */
  readonly cpu: string
  readonly memory: string
  readonly memoryMiB: number
}

/**
 * Workers, cache and resources for the gateway pod on `type`. `workers` > 0 pins the worker count
 * (stack config velox:gatewayWorkers); 0 derives it from the CPUs the pod may use.
 */
export function gatewaySizing(type: string, workers = 0): GatewaySizing {
  const info = instanceType(type)
  if (!info) throw new Error(`unknown gateway instance type "${type}"`)
  const mem = memoryGiB(type)
  const reserved = nodeReserved(info.vcpus, mem)
  const cpuMillis = info.vcpus * 1000 - reserved.cpuMillis
  const budgetMiB = Math.floor(mem * 1024 - reserved.memMiB)
  const n = workers > 0 ? workers : Math.max(1, Math.floor(cpuMillis / 1000))
  const primary = n > 1 ? PRIMARY_MIB : 0
  const perWorkerFixed = WORKER_BASE_MIB + WORKER_HEADROOM_MIB
  // Half of what is left after the fixed parts goes to the caches; the rest is the margin that
  // keeps a burst from reaching the limit.
  const spare = budgetMiB - primary - n * perWorkerFixed
  const cacheMiB = Math.min(MAX_CACHE_MIB_PER_WORKER, Math.floor(spare / 2 / n))
  if (cacheMiB < MIN_CACHE_MIB_PER_WORKER) {
    throw new Error(`${n} gateway workers do not fit in ${type} (${mem} GiB, ${budgetMiB} MiB allocatable): each needs ${perWorkerFixed + MIN_CACHE_MIB_PER_WORKER} MiB; lower velox:gatewayWorkers or pick a larger type`)
  }
  const memoryMiB = primary + n * (perWorkerFixed + cacheMiB)
  return { workers: n, cacheMaxBytes: cacheMiB * MiB, cpu: `${Math.min(cpuMillis, n * 1000)}m`, memory: `${memoryMiB}Mi`, memoryMiB }
}

export interface VllmSizing {
  readonly cpu: string
  readonly memory: string
  /** /dev/shm (tmpfs, counted against the memory limit): NCCL buffers between tensor-parallel ranks. */
  readonly shm: string
}

/** vLLM owns its GPU node: request most of it, so nothing else lands there and eviction never picks it. */
export function vllmSizing(type: string): VllmSizing {
  const info = instanceType(type)
  if (!info || info.gpus === 0) throw new Error(`unknown GPU instance type "${type}"`)
  const mem = memoryGiB(type)
  const reserved = nodeReserved(info.vcpus, mem)
  const cpuMillis = info.vcpus * 1000 - reserved.cpuMillis - 250 // device plugin and log shipping
  const memGiB = Math.floor((mem * 1024 - reserved.memMiB) / 1024 * 0.9)
  const shmGiB = Math.max(1, Math.min(16, Math.floor(memGiB / 8)))
  return { cpu: `${cpuMillis}m`, memory: `${memGiB}Gi`, shm: `${shmGiB}Gi` }
}
