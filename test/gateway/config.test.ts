import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigError, loadConfig, parseConfig } from '../../gateway/src/config/load.ts'

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'velox-config-'))
  const path = join(dir, 'gateway.yaml')
  writeFileSync(path, text)
  return path
}

test('embedded defaults are complete and frozen', () => {
  const config = loadConfig(null, {})
  assert.equal(config.server.port, 8080)
  assert.deepEqual(config.upstreams, [])
  assert.equal(config.simulator.enabled, true)
  assert.ok(Object.isFrozen(config.server))
  assert.throws(() => {
    ;(config.server as { port: number }).port = 1
  }, TypeError)
})

test('a YAML file fills per-upstream defaults', () => {
  const config = loadConfig(file('upstreams:\n  - name: a\n    url: http://10.0.0.1:8000\n    models: [m]\n    pool: { connections: 8 }\n'), {})
  const u = config.upstreams[0]!
  assert.equal(u.pool.connections, 8)
  assert.equal(u.pool.warm, 4)
  assert.equal(u.timeouts.connectMs, 2000)
})

test('unknown keys and bad values are rejected with their path', () => {
  const err = (() => {
    try {
      loadConfig(file('server:\n  prot: 1\nupstreams:\n  - name: a\n    url: ftp://x\n    models: []\n'), {})
    } catch (e) {
      return e as ConfigError
    }
    return null
  })()
  assert.ok(err instanceof ConfigError)
  assert.ok(err.issues.some((i) => i.startsWith('server: Unrecognized key: "prot"')), err.message)
  assert.ok(err.issues.some((i) => i.startsWith('upstreams[0].url')), err.message)
  assert.ok(err.issues.some((i) => i.startsWith('upstreams[0].models')), err.message)
  assert.match(err.message, /gateway\.yaml/)
})

test('duplicate names and warm > connections are refused', () => {
  assert.throws(
    () => parseConfig({ upstreams: [{ name: 'a', url: 'http://x', models: ['m'] }, { name: 'a', url: 'http://y', models: ['m'], pool: { connections: 2, warm: 3 } }] }),
    (e: ConfigError) => e.issues.includes('upstreams[1].name: duplicate upstream name "a"') && e.issues.some((i) => i.startsWith('upstreams[1].pool.warm')),
  )
})

test('environment overrides apply before validation', () => {
  const config = loadConfig(null, { VELOX_PORT: '9999', VELOX_LOG_LEVEL: 'debug', VELOX_HOST: '127.0.0.1' })
  assert.equal(config.server.port, 9999)
  assert.equal(config.log.level, 'debug')
  assert.throws(() => loadConfig(null, { VELOX_PORT: 'eighty' }), /VELOX_PORT: expected a whole number/)
  assert.throws(() => loadConfig(null, { VELOX_LOG_LEVEL: 'loud' }), /log\.level/)
})

test('unreadable or non-YAML files fail clearly', () => {
  assert.throws(() => loadConfig('/nonexistent/velox.yaml', {}), /cannot read file/)
  assert.throws(() => loadConfig(file('server: [unclosed'), {}), /not valid YAML/)
  assert.throws(() => loadConfig(file('- a\n- b\n'), {}), /expected a mapping/)
})
