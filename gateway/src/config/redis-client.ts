/**
 * ioredis options for a connection the request path uses (the cache tier, limits): every command
 * bounded by `redis.commandTimeoutMs`, and none queued while disconnected, so a request never
 * waits for a reconnect.
 */
import { createRequire } from 'node:module'
import type { Redis, RedisOptions } from 'ioredis'

let redisClass: typeof Redis | null = null

/**
 * The ioredis client class, loaded on first use (when a cache tier or limit store connects):
 * a gateway configured without Redis never loads ioredis (about 4 MB resident).
 */
export function redisClientClass(): typeof Redis {
  redisClass ??= (createRequire(import.meta.url)('ioredis') as typeof import('ioredis')).Redis
  return redisClass
}

export interface RedisClientSettings {
  readonly passwordEnv?: string | undefined
  readonly connectTimeoutMs: number
  readonly commandTimeoutMs: number
}

export function requestPathRedisOptions(settings: RedisClientSettings): RedisOptions {
  const password = settings.passwordEnv !== undefined ? process.env[settings.passwordEnv] : undefined
  return {
    lazyConnect: true,
    connectTimeout: settings.connectTimeoutMs,
    commandTimeout: settings.commandTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // No CLIENT SETINFO on connect: servers before Redis 7.2 (ElastiCache 7.0/7.1 among them)
    // answer it with an error, and ioredis keeps that failed command's timeout timer running.
    disableClientInfo: true,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...(password !== undefined ? { password } : {}),
  }
}
