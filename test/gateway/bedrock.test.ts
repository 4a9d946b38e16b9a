/**
 * `kind: bedrock` end to end. The simulator speaks Bedrock's Converse wire format and checks
 * SigV4 as AWS does; the official AWS SDK (`@aws-sdk/client-bedrock-runtime`) is first pointed at
 * the simulator directly, to prove the simulator's format and signature check are AWS's, then the
 * gateway sits in front of it and the official OpenAI and Anthropic SDKs talk to the gateway.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime'
import Anthropic from '@anthropic-ai/sdk'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import OpenAI from 'openai'
import aws4 from 'aws4'
import { hashKey } from '../../gateway/src/auth/authenticator.ts'
import { parseConfig } from '../../gateway/src/config/load.ts'
import { metricsText } from '../../gateway/src/server.ts'
import type { GatewayConfigInput } from '../../gateway/src/config/schema.ts'
import { encodeMessage } from '../../gateway/src/protocols/bedrock/event-stream.ts'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'
import { post, startGateway, startRawUpstream, type TestGateway } from '../helpers/gateway.ts'

type UpstreamInput = NonNullable<GatewayConfigInput['upstreams']>[number]

const CREDS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }
const MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0'
const ENV = { AWS_ACCESS_KEY_ID: CREDS.accessKeyId, AWS_SECRET_ACCESS_KEY: CREDS.secretAccessKey }
const WEATHER = { type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }

function bedrockUpstream(name: string, url: string, extra: Partial<UpstreamInput> = {}): UpstreamInput {
  return { name, kind: 'bedrock', region: 'us-east-1', url, models: [MODEL, 'claude'], pool: { warm: 1 }, ...extra }
}

describe('the simulator speaks Bedrock as the AWS SDK expects', () => {
  let sim: Simulator
  before(async () => {
    sim = await startSimulator({ tokens: 5, aws: CREDS })
  })
  after(() => sim.close())

  test('Converse and ConverseStream through the official client: answers, events, usage', async () => {
    // HTTP/1.1: the simulator is a plain node:http server (the client's default handler speaks HTTP/2).
    const client = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: sim.url, credentials: CREDS, maxAttempts: 1, requestHandler: new NodeHttpHandler() })
    try {
      const answer = await client.send(new ConverseCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: 'Hello' }] }], inferenceConfig: { maxTokens: 50 } }))
      assert.equal(answer.stopReason, 'end_turn')
      const text = answer.output?.message?.content?.[0]?.text ?? ''
      assert.equal(text.split(' ').length, 5)
      assert.equal(answer.usage?.outputTokens, 5)
      const stream = await client.send(new ConverseStreamCommand({ modelId: MODEL, messages: [{ role: 'user', content: [{ text: 'Hello' }] }], inferenceConfig: { maxTokens: 50 } }))
      const kinds: string[] = []
      let streamed = ''
      for await (const ev of stream.stream!) {
        kinds.push(Object.keys(ev)[0]!)
        streamed += ev.contentBlockDelta?.delta?.text ?? ''
        if (ev.metadata !== undefined) assert.equal(ev.metadata.usage?.outputTokens, 5)
      }
      assert.equal(streamed, text)
      assert.deepEqual([...new Set(kinds)], ['messageStart', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata'])
    } finally {
      client.destroy()
    }
  })

  test('a wrong secret, an unknown key and a stale date are refused with 403, as AWS does', async () => {
    const wrong = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: sim.url, credentials: { ...CREDS, secretAccessKey: 'not-the-secret' }, maxAttempts: 1, requestHandler: new NodeHttpHandler() })
    const unknown = new BedrockRuntimeClient({ region: 'us-east-1', endpoint: sim.url, credentials: { ...CREDS, accessKeyId: 'AKIDOTHER' }, maxAttempts: 1, requestHandler: new NodeHttpHandler() })
    const input = { modelId: MODEL, messages: [{ role: 'user' as const, content: [{ text: 'Hello' }] }] }
    try {
      await assert.rejects(wrong.send(new ConverseCommand(input)), (e: { name: string; $metadata: { httpStatusCode: number } }) => e.name === 'InvalidSignatureException' && e.$metadata.httpStatusCode === 403)
      await assert.rejects(unknown.send(new ConverseCommand(input)), (e: { name: string }) => e.name === 'UnrecognizedClientException')
    } finally {
      wrong.destroy()
      unknown.destroy()
    }
    // Signed right, but 2015: a replayed request.
    const path = `/model/${encodeURIComponent(MODEL)}/converse`
    const body = JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] })
    const host = new URL(sim.url).host
    const old = aws4.sign({ host, path, method: 'POST', service: 'bedrock', region: 'us-east-1', body, headers: { 'content-type': 'application/json', 'X-Amz-Date': '20150830T123600Z' } }, CREDS).headers as Record<string, string>
    const stale = await post(`${sim.url}${path}`, body, { 'x-amz-date': old['X-Amz-Date']!, authorization: old.Authorization! })
    assert.equal(stale.status, 403)
    assert.deepEqual(await stale.json(), { message: 'Signature expired' })
    const fresh = aws4.sign({ host, path, method: 'POST', service: 'bedrock', region: 'us-east-1', body, headers: { 'content-type': 'application/json' } }, CREDS).headers as Record<string, string>
    const ok = await post(`${sim.url}${path}`, body, { 'x-amz-date': fresh['X-Amz-Date']!, authorization: fresh.Authorization! })
    assert.equal(ok.status, 200)
    await ok.text()
    const unsigned = await post(`${sim.url}/model/${encodeURIComponent(MODEL)}/converse`, JSON.stringify({ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }))
    assert.equal(unsigned.status, 403)
    assert.match(unsigned.headers.get('x-amzn-errortype') ?? '', /^AccessDeniedException:/)
    await unsigned.text()
  })
})

describe('kind: bedrock behind the gateway, official OpenAI and Anthropic SDKs', () => {
  let sim: Simulator
  let backup: Simulator
  let gw: TestGateway
  let openai: OpenAI

  before(async () => {
    sim = await startSimulator({ tokens: 6, aws: CREDS })
    backup = await startSimulator({ tokens: 6, models: [MODEL, 'claude'] })
    gw = await startGateway({ upstreams: [bedrockUpstream('bedrock', sim.url)] }, ENV)
    openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })
  after(async () => {
    await gw.close()
    await sim.close()
    await backup.close()
  })

  test('chat: non-stream and stream (with usage) give the same answer, named as asked', async () => {
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Hello there' }]
    const plain = await openai.chat.completions.create({ model: MODEL, messages })
    assert.equal(plain.object, 'chat.completion')
    assert.equal(plain.model, MODEL)
    assert.equal(plain.choices[0]!.finish_reason, 'stop')
    assert.equal(plain.usage?.completion_tokens, 6)
    const text = plain.choices[0]!.message.content!
    assert.equal(text.split(' ').length, 6)
    const stream = await openai.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } })
    let streamed = ''
    let usage: unknown = null
    const finish: string[] = []
    for await (const chunk of stream) {
      streamed += chunk.choices[0]?.delta.content ?? ''
      if (chunk.choices[0]?.finish_reason) finish.push(chunk.choices[0].finish_reason)
      if (chunk.usage) usage = chunk.usage
    }
    assert.equal(streamed, text)
    assert.deepEqual(finish, ['stop'])
    assert.equal((usage as { completion_tokens: number }).completion_tokens, 6)
  })

  test('token usage of Bedrock answers (JSON and event stream) is counted', async () => {
    const tokens = async (): Promise<number> => {
      const m = /velox_tokens_total\{model="([^"]+)",kind="completion"\} (\d+)/.exec(await metricsText(gw.app.velox.metrics))
      return m === null ? 0 : Number(m[2])
    }
    const before = await tokens()
    await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'count me' }] })
    const afterJson = await tokens()
    assert.equal(afterJson - before, 6)
    const stream = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'count me' }], stream: true })
    for await (const _ of stream) void _
    assert.equal((await tokens()) - afterJson, 6)
  })

  test('chat tools: a tool call (stream and not), then the answer to its result', async () => {
    const ask = [{ role: 'user' as const, content: 'Weather in Oslo?' }]
    const call = await openai.chat.completions.create({ model: MODEL, messages: ask, tools: [WEATHER] })
    assert.equal(call.choices[0]!.finish_reason, 'tool_calls')
    const tc = call.choices[0]!.message.tool_calls![0]! as { id: string; function: { name: string; arguments: string } }
    assert.equal(tc.function.name, 'get_weather')
    assert.equal(typeof JSON.parse(tc.function.arguments), 'object')
    const stream = await openai.chat.completions.create({ model: MODEL, messages: ask, tools: [WEATHER], stream: true })
    let args = ''
    let name = ''
    let finish = ''
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta.tool_calls?.[0]
      if (d?.function?.name) name = d.function.name
      args += d?.function?.arguments ?? ''
      finish = chunk.choices[0]?.finish_reason ?? finish
    }
    assert.equal(name, 'get_weather')
    assert.equal(args, tc.function.arguments)
    assert.equal(finish, 'tool_calls')
    const answer = await openai.chat.completions.create({
      model: MODEL,
      tools: [WEATHER],
      messages: [...ask, { role: 'assistant', content: null, tool_calls: [{ id: tc.id, type: 'function', function: tc.function }] }, { role: 'tool', tool_call_id: tc.id, content: '12 C, rain' }],
    })
    assert.equal(answer.choices[0]!.finish_reason, 'stop')
    assert.ok(answer.choices[0]!.message.content!.length > 0)
  })

  test('the Anthropic SDK through a bedrock upstream: messages.create and messages.stream', async () => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: 'unused', maxRetries: 0 })
    const msg = await client.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'Hello there' }] })
    assert.equal(msg.stop_reason, 'end_turn')
    assert.equal(msg.usage.output_tokens, 6)
    const text = (msg.content[0] as { text: string }).text
    const stream = client.messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'Hello there' }] })
    const final = await stream.finalMessage()
    assert.equal((final.content[0] as { text: string }).text, text)
    assert.equal(final.usage.output_tokens, 6)
  })

  test('Bedrock\'s errors reach the SDK typed, with its status and message; a URL image is refused before sending', async () => {
    sim.setFaults({ status: 429 })
    try {
      await assert.rejects(openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), (e: unknown) => e instanceof OpenAI.RateLimitError && /Simulated upstream failure/.test(e.message) && (e.error as { type: string }).type === 'ThrottlingException')
    } finally {
      sim.clearFaults()
    }
    await assert.rejects(
      openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }),
      (e: unknown) => e instanceof OpenAI.BadRequestError && (e.error as { code: string }).code === 'GW_ERR_UNSUPPORTED_CONTENT',
    )
    await assert.rejects(openai.embeddings.create({ model: MODEL, input: 'x' }), (e: unknown) => e instanceof OpenAI.BadRequestError && /embeddings on a bedrock upstream/.test(e.message))
    const denied = await startGateway({ upstreams: [bedrockUpstream('bedrock', sim.url)] }, { AWS_ACCESS_KEY_ID: CREDS.accessKeyId, AWS_SECRET_ACCESS_KEY: 'wrong' })
    try {
      const client = new OpenAI({ baseURL: `${denied.url}/v1`, apiKey: 'unused', maxRetries: 0 })
      await assert.rejects(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }), (e: unknown) => e instanceof OpenAI.PermissionDeniedError && /signature we calculated does not match/.test(e.message))
    } finally {
      await denied.close()
    }
  })

  test('throttling, an exception as the first event, and a stream cut mid-way', async () => {
    const gw2 = await startGateway({ upstreams: [bedrockUpstream('bedrock', sim.url, { priority: 0 }), { name: 'backup', url: backup.url, models: [MODEL], priority: 1, pool: { warm: 0 } }] }, ENV)
    try {
      for (const faults of [{ status: 429 }, { errorEventFirst: true }]) {
        sim.setFaults(faults)
        try {
          const res = await post(`${gw2.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] }))
          assert.equal(res.headers.get('x-velox-upstream'), 'backup', JSON.stringify(faults))
          assert.match(await res.text(), /data: \[DONE\]/)
        } finally {
          sim.clearFaults()
        }
      }
    } finally {
      await gw2.close()
    }
    sim.setFaults({ resetAfterChunks: 3, interTokenMs: 1 })
    try {
      const stream = await openai.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] })
      let text = ''
      await assert.rejects(async () => {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      }, /GW_ERR_UPSTREAM_STREAM_BROKEN|upstream/)
      assert.ok(text.length > 0, 'tokens before the cut reached the client')
    } finally {
      sim.clearFaults()
    }
  })
})

describe('token limits over a bedrock upstream', () => {
  test('usage is metered from the upstream\'s own events (bedrock, anthropic); a client that did not ask gets no usage chunk', async () => {
    const sim = await startSimulator({ tokens: 4, aws: CREDS })
    const gw = await startGateway({
      upstreams: [bedrockUpstream('bedrock', sim.url), { name: 'claude', kind: 'anthropic', url: sim.url, models: ['claude-sim'], pool: { warm: 0 } }],
      auth: { keys: [{ name: 'k1', tenant: 't1', hash: hashKey('sk-t1') }] },
      limits: { rules: [{ name: 't1', match: { tenant: 't1' }, tokensPerMinute: 100_000 }] },
    }, ENV)
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] }), { authorization: 'Bearer sk-t1' })
      assert.equal(res.status, 200)
      const text = await res.text()
      assert.match(text, /data: \[DONE\]/)
      assert.doesNotMatch(text, /"usage":\{/, 'a usage chunk the client did not ask for')
      const metrics = await gw.app.velox.metrics.registry.metrics()
      assert.match(metrics, /velox_usage_tokens_total\{tenant="t1",key="k1",model="[^"]+",kind="output"\} 4/)
      // The same for an Anthropic-native upstream.
      const claude = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: 'claude-sim', stream: true, messages: [{ role: 'user', content: 'hi' }] }), { authorization: 'Bearer sk-t1' })
      const claudeText = await claude.text()
      assert.match(claudeText, /data: \[DONE\]/)
      assert.doesNotMatch(claudeText, /"usage":\{/)
      assert.match(await gw.app.velox.metrics.registry.metrics(), /velox_usage_tokens_total\{tenant="t1",key="k1",model="claude-sim",kind="output"\} 4/)
      // A client that asks still gets it.
      const asked = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }), { authorization: 'Bearer sk-t1' })
      assert.match(await asked.text(), /"usage":\{"prompt_tokens":\d+,"completion_tokens":4/)
    } finally {
      await gw.close()
      await sim.close()
    }
  })
})

describe('Bedrock throttling as the first stream event', () => {
  test('counts as a 429 and fails over; another exception counts as a 5xx', async () => {
    let exception = 'throttlingException'
    const up = await startRawUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/health') return res.end()
        res.writeHead(200, { 'content-type': 'application/vnd.amazon.eventstream' })
        res.end(encodeMessage('exception', exception, '{"message":"Too many tokens, please wait before trying again."}'))
      })
    })
    const backup = await startSimulator({ tokens: 3, models: [MODEL] })
    const gw = await startGateway({ upstreams: [bedrockUpstream('bedrock', up.url, { priority: 0, pool: { warm: 0 } }), { name: 'backup', url: backup.url, models: [MODEL], priority: 1, pool: { warm: 0 } }] }, ENV)
    try {
      for (const [name, kind] of [['throttlingException', '429'], ['modelStreamErrorException', '5xx']] as const) {
        exception = name
        const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] }))
        assert.equal(res.headers.get('x-velox-upstream'), 'backup')
        await res.text()
        assert.match(await metricsText(gw.app.velox.metrics), new RegExp(`velox_retries_total\\{upstream="backup",kind="${kind}"\\} 1`), name)
      }
    } finally {
      await gw.close()
      await backup.close()
      await up.close()
    }
  })
})

describe('bedrock credentials and config', () => {
  test('credentials from the AWS provider chain: a profile in the shared credentials file, with a session token', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'velox-aws-'))
    writeFileSync(join(dir, 'credentials'), `[velox-test]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\naws_session_token = profile-token\n`)
    writeFileSync(join(dir, 'config'), '[profile velox-test]\nregion = us-east-1\n')
    const saved = { ...process.env }
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE']) delete process.env[k]
    Object.assign(process.env, { AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_CONFIG_FILE: join(dir, 'config'), AWS_PROFILE: 'velox-test', AWS_EC2_METADATA_DISABLED: 'true' })
    const sim = await startSimulator({ tokens: 3, aws: { accessKeyId: 'AKIDPROFILE', secretAccessKey: 'profile-secret', sessionToken: 'profile-token' } })
    let gw: TestGateway | null = null
    try {
      // No region in the config: it comes from AWS_REGION, as the SDKs take it.
      process.env.AWS_REGION = 'us-east-1'
      gw = await startGateway({ upstreams: [{ name: 'bedrock', kind: 'bedrock', url: sim.url, models: [MODEL], pool: { warm: 1 } }] }, process.env)
      const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }))
      assert.equal(res.status, 200, await res.clone().text())
      assert.equal(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3)
    } finally {
      await gw?.close()
      await sim.close()
      process.env = saved
    }
  })

  test('a Bedrock API key is sent as a Bearer token, unsigned, to the Converse path', async () => {
    const seen: { url?: string; headers: Record<string, string | string[] | undefined> }[] = []
    const up = await startRawUpstream((req, res) => {
      req.resume()
      req.on('end', () => {
        if (req.url === '/health') return res.end()
        seen.push({ url: req.url, headers: req.headers })
        res.writeHead(200, { 'content-type': 'application/json', 'x-amzn-requestid': 'r-1' }).end(JSON.stringify({ output: { message: { role: 'assistant', content: [{ text: 'hi' }] } }, stopReason: 'end_turn', usage: { inputTokens: 1, outputTokens: 1, totalTokens: 2 } }))
      })
    })
    const gw = await startGateway({ upstreams: [{ ...bedrockUpstream('bedrock', up.url), apiKeyEnv: 'BEDROCK_KEY' }] }, { BEDROCK_KEY: 'bedrock-api-key' })
    try {
      const res = await post(`${gw.url}/v1/chat/completions`, JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }))
      assert.equal(res.status, 200)
      assert.equal(((await res.json()) as { id: string }).id, 'chatcmpl-r-1')
      assert.equal(seen[0]!.url, `/model/${encodeURIComponent(MODEL)}/converse`)
      assert.equal(seen[0]!.headers.authorization, 'Bearer bedrock-api-key')
      assert.equal(seen[0]!.headers['x-amz-date'], undefined)
    } finally {
      await gw.close()
      await up.close()
    }
  })

  test('the region must be known: config, the URL\'s host, or AWS_REGION', async () => {
    assert.throws(() => parseConfig({ upstreams: [{ ...bedrockUpstream('b', 'http://127.0.0.1:1'), region: 'nowhere' }] }), /upstreams\[0\]\.region/)
    await assert.rejects(startGateway({ upstreams: [{ name: 'b', kind: 'bedrock', url: 'http://127.0.0.1:1', models: ['m'] }] }, ENV), /kind bedrock needs a region/)
  })
})
