import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { Writable } from 'node:stream'
import { hashKey } from '../../gateway/src/auth/authenticator.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { chatBody, post, startGateway, type TestGateway } from '../helpers/gateway.ts'
import { eventually } from '../helpers/eventually.ts'

let sim: Simulator
let gw: TestGateway
/** Every log line of the gateway, at debug level (secrets must never reach them). */
const logs: string[] = []
const logSink = new Writable({
  write(chunk: Buffer, _encoding, done) {
    logs.push(chunk.toString())
    done()
  },
})
before(async () => {
  sim = await startSimulator()
  gw = await startGateway({
    log: { level: 'debug' },
    telemetry: { accessLog: { enabled: true } },
    upstreams: [{ name: 'sim', url: sim.url, models: ['velox-sim-1', 'other-model'] }],
    auth: {
      keys: [
        { name: 'team-a', hash: hashKey('sk-team-a-secret'), tenant: 'a' },
        { name: 'team-b', hash: hashKey('sk-team-b-secret'), tenant: 'b', models: ['other-model'] },
      ],
    },
  }, process.env, logSink)
})
after(async () => {
  await gw.close()
  await sim.close()
})

test('a valid key passes; a missing, malformed or unknown key gets 401 OpenAI-shaped', async () => {
  assert.equal((await post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: 'Bearer sk-team-a-secret' })).status, 200)
  for (const auth of [undefined, 'sk-team-a-secret', 'Bearer ', 'Bearer sk-team-a-secreT', 'Basic abc']) {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody(), auth === undefined ? {} : { authorization: auth })
    assert.equal(res.status, 401, String(auth))
    const body = (await res.json()) as { error: { code: string; type: string } }
    assert.equal(body.error.code, 'GW_ERR_UNAUTHORIZED')
    assert.equal(body.error.type, 'authentication_error')
  }
})

test('a key limited to some models gets 403 for the others', async () => {
  const res = await post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: 'Bearer sk-team-b-secret' })
  assert.equal(res.status, 403)
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_MODEL_NOT_ALLOWED')
  const ok = await post(`${gw.url}/v1/chat/completions`, chatBody({ model: 'other-model' }), { authorization: 'Bearer sk-team-b-secret' })
  assert.equal(ok.status, 200)
})

test('the hash-key tool prints the config form of a key read from stdin', () => {
  const out = spawnSync(process.execPath, [new URL('../../gateway/src/auth/hash-key.ts', import.meta.url).pathname], { input: 'sk-team-a-secret\n' })
  assert.equal(out.stdout.toString().trim(), hashKey('sk-team-a-secret'))
  assert.match(hashKey('x'), /^sha256:[0-9a-f]{64}$/)
})

test('a config with a malformed hash is refused', async () => {
  await assert.rejects(startGateway({ auth: { keys: [{ name: 'k', hash: 'sk-plain-key', tenant: 't' }] } }), /auth\.keys\[0\]\.hash/)
})

test('the Bearer scheme is case-insensitive and may be followed by several spaces', async () => {
  for (const auth of ['bearer sk-team-a-secret', 'BEARER sk-team-a-secret', 'bEaReR   sk-team-a-secret']) {
    assert.equal((await post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: auth })).status, 200, auth)
  }
  for (const auth of ['bearersk-team-a-secret', 'bearer', 'bearer    ', 'Bearers sk-team-a-secret']) {
    assert.equal((await post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: auth })).status, 401, auth)
  }
})

test('with keys configured, /v1/models and /v1/models/{id} need a key and show only what it may use', async () => {
  for (const path of ['/v1/models', '/v1/models/velox-sim-1', '/v1/models/other-model']) {
    const res = await fetch(`${gw.url}${path}`)
    assert.equal(res.status, 401, path)
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'GW_ERR_UNAUTHORIZED')
  }
  const ids = async (key: string): Promise<string[]> => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } })
    assert.equal(res.status, 200)
    return ((await res.json()) as { data: Array<{ id: string }> }).data.map((m) => m.id)
  }
  assert.deepEqual(await ids('sk-team-a-secret'), ['other-model', 'velox-sim-1'])
  assert.deepEqual(await ids('sk-team-b-secret'), ['other-model'])
  const one = async (key: string, id: string): Promise<number> => {
    const res = await fetch(`${gw.url}/v1/models/${id}`, { headers: { authorization: `Bearer ${key}` } })
    await res.arrayBuffer()
    return res.status
  }
  assert.equal(await one('sk-team-b-secret', 'other-model'), 200)
  const hidden = await fetch(`${gw.url}/v1/models/velox-sim-1`, { headers: { authorization: 'Bearer sk-team-b-secret' } })
  assert.equal(hidden.status, 404)
  assert.equal(((await hidden.json()) as { error: { code: string } }).error.code, 'GW_ERR_MODEL_NOT_FOUND')
  assert.equal(await one('sk-team-a-secret', 'velox-sim-1'), 200)
})

test("no presented key reaches the logs, even at debug level; the caller's tenant does", async () => {
  const before = logs.length
  for (const auth of ['Bearer sk-team-a-secret', 'Bearer sk-team-a-secreT', 'Bearer sk-team-b-secret']) {
    const res = await post(`${gw.url}/v1/chat/completions`, chatBody(), { authorization: auth })
    await res.arrayBuffer()
  }
  // Positive control: these requests were logged (access log lines, written after the response), with the caller's tenant.
  await eventually(() => logs.slice(before).filter((l) => l.includes('"access"')).length >= 3, { what: 'three access log lines' })
  const text = logs.join('')
  assert.match(text, /"tenant":"a"/)
  for (const secret of ['sk-team-a-secret', 'sk-team-a-secreT', 'sk-team-b-secret']) assert.equal(text.includes(secret), false, `${secret} is in the logs`)
})
