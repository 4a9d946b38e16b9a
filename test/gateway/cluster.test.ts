/** server.workers > 1: workers share the port, metrics are summed, crashed workers come back. */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'

const MAIN = new URL('../../gateway/src/main.ts', import.meta.url).pathname
let child: ChildProcess | null = null
after(() => child?.kill('SIGKILL'))

async function request(url: string): Promise<number> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }),
  })
  await res.arrayBuffer()
  return res.status
}

function totalRequests(metrics: string): number {
  let sum = 0
  for (const m of metrics.matchAll(/^velox_requests_total\{[^}]*\} (\d+)/gm)) sum += Number(m[1])
  return sum
}

test('two workers serve one port, /metrics sums them, a killed worker is replaced, SIGTERM exits 0', async () => {
  child = spawn(process.execPath, [MAIN], { env: { ...process.env, VELOX_WORKERS: '2', VELOX_PORT: '0', VELOX_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout!.on('data', (c: Buffer) => (out += c))
  child.stderr!.on('data', (c: Buffer) => (out += c))
  const workerPids = async (n: number): Promise<number[]> => {
    for (let i = 0; i < 400; i++) {
      const pids = [...out.matchAll(/"pid":(\d+),"members":1,"answered":1/g)].map((m) => Number(m[1]))
      if (pids.length >= n) return pids
      await new Promise((r) => setTimeout(r, 25))
    }
    throw new Error(`workers never warmed:\n${out}`)
  }
  const pids = await workerPids(2)
  const port = /"workers":2,"port":(\d+)/.exec(out)![1]
  const url = `http://127.0.0.1:${port}`

  for (let i = 0; i < 20; i++) assert.equal(await request(url), 200)
  for (let i = 0; i < 3; i++) {
    const metrics = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text()
    assert.equal(totalRequests(metrics), 20, 'a scrape did not see every worker')
  }

  process.kill(pids[0]!, 'SIGKILL')
  await workerPids(3)
  for (let i = 0; i < 10; i++) assert.equal(await request(url), 200)

  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.equal(code, 0)
  child = null
})
