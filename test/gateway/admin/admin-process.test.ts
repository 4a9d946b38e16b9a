/** main.ts starts the admin listener from config, guarded by the token from the environment. */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { configFile, killGatewayProcesses, MAIN, startGatewayProcess, waitReady } from '../../helpers/process.ts'
import { eventually } from '../../helpers/eventually.ts'

after(killGatewayProcesses)

test('main.ts serves /metrics on the admin port with the token, and not on the main port', async () => {
  const file = configFile('admin:\n  port: 0\n  tokenEnv: VELOX_TEST_ADMIN_TOKEN\n')
  const gw = await startGatewayProcess(['--config', file], { VELOX_TEST_ADMIN_TOKEN: 's3cret' })
  try {
    await waitReady(gw.url)
    const port = await eventually(() => /"port":(\d+)[^\n]*"msg":"admin listener up"/.exec(gw.logs())?.[1], { what: 'the admin listener line', intervalMs: 25 })
    const admin = `http://127.0.0.1:${port}`
    assert.equal((await fetch(`${admin}/metrics`)).status, 401)
    const res = await fetch(`${admin}/metrics`, { headers: { authorization: 'Bearer s3cret' } })
    assert.equal(res.status, 200)
    assert.match(await res.text(), /velox_requests_total|velox_config_generation/)
    assert.equal((await fetch(`${gw.url}/metrics`)).status, 404)
    assert.doesNotMatch(gw.logs(), /s3cret/, 'the token reached the log')
  } finally {
    gw.child.kill('SIGTERM')
    assert.equal(await gw.exited, 0)
  }
})

test('a tokenEnv that is not set stops the gateway at boot (exit 78)', async () => {
  const file = configFile('admin:\n  port: 0\n  tokenEnv: VELOX_TEST_ADMIN_TOKEN_MISSING\n')
  const child = spawn(process.execPath, [MAIN, '--config', file], { env: { ...process.env, VELOX_PORT: '0', VELOX_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (c: Buffer) => (out += c))
  const [code] = await once(child, 'exit')
  assert.equal(code, 78)
  assert.match(out, /VELOX_TEST_ADMIN_TOKEN_MISSING is not set/)
})
