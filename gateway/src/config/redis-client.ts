/**
 * ioredis options for a connection the request path uses (the cache tier, limits): every command
 * bounded by `redis.commandTimeoutMs`, and none queued while disconnected, so a request never
 * waits for a reconnect.
 */
import type { RedisOptions } from 'ioredis'

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
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2_000),
    ...(password !== undefined ? { password } : {}),
  }
}
