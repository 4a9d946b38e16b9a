/** API keys: header forms, expiry, priority, and a keys file followed without a restart. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, renameSync, symlinkSync, writeFileSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Authenticator, hashKey } from '../../gateway/src/auth/authenticator.ts'
import { AuthSchema, type ApiKeyConfig } from '../../gateway/src/auth/config.ts'
import { KeysFileWatcher } from '../../gateway/src/auth/keys-file.ts'
import { GatewayError } from '../../gateway/src/errors.ts'

const auth = (input: unknown, fileKeys: ApiKeyConfig[] = []): Authenticator => new Authenticator(AuthSchema.parse(input), fileKeys)
const key = (name: string, secret: string, extra: Record<string, unknown> = {}) => ({ name, hash: hashKey(secret), tenant: `t-${name}`, ...extra })

function code(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof GatewayError)
    return err.code
  }
  return 'passed'
}

test('Bearer in any case, and x-api-key, carry the key; Authorization wins when both are sent', () => {
  const a = auth({ keys: [key('a', 'sk-a'), key('b', 'sk-b')] })
  assert.equal(a.authenticate({ authorization: 'Bearer sk-a' }).keyName, 'a')
  assert.equal(a.authenticate({ authorization: 'bearer sk-a' }).keyName, 'a')
  assert.equal(a.authenticate({ authorization: 'BEARER   sk-a ' }).keyName, 'a')
  assert.equal(a.authenticate({ 'x-api-key': 'sk-b' }).keyName, 'b')
  assert.equal(a.authenticate({ authorization: 'Bearer sk-a', 'x-api-key': 'sk-b' }).keyName, 'a')
  for (const headers of [{}, { authorization: 'Basic sk-a' }, { authorization: 'Bearer' }, { authorization: 'Bearersk-a' }, { 'x-api-key': '' }, { 'x-api-key': 'sk-c' }]) {
    assert.equal(code(() => a.authenticate(headers)), 'GW_ERR_UNAUTHORIZED', JSON.stringify(headers))
  }
})

test('an expired key is refused with its own code; priority and expiry reach the principal', () => {
  const a = auth({ keys: [key('old', 'sk-old', { expiresAt: '2026-01-01T00:00:00Z', priority: 'batch' }), key('new', 'sk-new', { priority: 'high' })] })
  assert.equal(a.authenticate({ 'x-api-key': 'sk-old' }, Date.UTC(2025, 11, 31)).priority, 'batch')
  assert.equal(code(() => a.authenticate({ 'x-api-key': 'sk-old' }, Date.UTC(2026, 0, 1))), 'GW_ERR_KEY_EXPIRED')
  assert.equal(a.authenticate({ 'x-api-key': 'sk-new' }).priority, 'high')
  assert.throws(() => AuthSchema.parse({ keys: [key('x', 'sk-x', { expiresAt: 'tomorrow' })] }))
  assert.throws(() => AuthSchema.parse({ keys: [key('x', 'sk-x'), key('x', 'sk-y')] }), /duplicate key name/)
})

test('a keys file turns auth on even while empty, and its keys are swapped in place', () => {
  const a = auth({ keysFile: '/nonexistent/keys.yaml' })
  assert.equal(a.enabled, true)
  assert.equal(code(() => a.authenticate({ 'x-api-key': 'sk-f' })), 'GW_ERR_UNAUTHORIZED')
  a.setFileKeys([AuthSchema.parse({ keys: [key('f', 'sk-f')] }).keys[0]!])
  assert.equal(a.authenticate({ 'x-api-key': 'sk-f' }).tenant, 't-f')
  a.setFileKeys([])
  assert.equal(code(() => a.authenticate({ 'x-api-key': 'sk-f' })), 'GW_ERR_UNAUTHORIZED')
})

test('the keys file watcher follows a Kubernetes-style Secret volume (symlink swap) and refuses a bad file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'velox-keys-'))
  try {
    // A Secret volume: keys.yaml -> ..data/keys.yaml, ..data -> ..2026_v1; an update swaps ..data.
    const v1 = join(dir, '..v1')
    mkdirSync(v1)
    writeFileSync(join(v1, 'keys.yaml'), `keys:\n  - name: one\n    hash: ${hashKey('sk-1')}\n    tenant: acme\n`)
    symlinkSync('..v1', join(dir, '..data'))
    symlinkSync('..data/keys.yaml', join(dir, 'keys.yaml'))
    const loaded: string[][] = []
    const refused: string[] = []
    const watcher = new KeysFileWatcher(join(dir, 'keys.yaml'), { loaded: (keys) => loaded.push(keys.map((k) => k.name)), refused: (r) => refused.push(r) })
    await watcher.start()
    try {
      assert.deepEqual(loaded, [['one']])
      const v2 = join(dir, '..v2')
      mkdirSync(v2)
      writeFileSync(join(v2, 'keys.yaml'), `keys:\n  - name: one\n    hash: ${hashKey('sk-1')}\n    tenant: acme\n  - name: two\n    hash: ${hashKey('sk-2')}\n    tenant: acme\n`)
      symlinkSync('..v2', join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      await watcher.check()
      assert.deepEqual(loaded.at(-1), ['one', 'two'])
      const count = loaded.length
      await watcher.check()
      assert.equal(loaded.length, count, 'unchanged content is not applied again')
      const v3 = join(dir, '..v3')
      mkdirSync(v3)
      writeFileSync(join(v3, 'keys.yaml'), 'keys:\n  - name: bad\n    hash: nope\n    tenant: acme\n')
      symlinkSync('..v3', join(dir, '..data_tmp'))
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
      await watcher.check()
      assert.equal(loaded.length, count, 'a bad file changes nothing')
      assert.match(refused.at(-1)!, /keys\.0\.hash/)
    } finally {
      watcher.close()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
