/** server.workers > 1: workers share the port, metrics are summed, crashed workers come back. */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { killGatewayProcesses, startGatewayProcess } from '../helpers/process.ts'
import { eventually } from '../helpers/eventually.ts'

after(killGatewayProcesses)

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
  const { child, url, logs, exited } = await startGatewayProcess([], { VELOX_WORKERS: '2' })
  // Generous: a loaded machine takes many seconds to start a worker process.
  const workerPids = (n: number): Promise<number[]> =>
    eventually(() => {
      const pids = [...logs().matchAll(/"pid":(\d+),"members":1,"answered":1/g)].map((m) => Number(m[1]))
      return pids.length >= n ? pids : null
    }, { what: `${n} warmed workers`, timeoutMs: 60_000, intervalMs: 25 }).catch((err: Error) => {
      throw new Error(`${err.message}:\n${logs()}`)
    })
  const pids = await workerPids(2)

  for (let i = 0; i < 20; i++) assert.equal(await request(url), 200)
  for (let i = 0; i < 3; i++) {
    const metrics = await (await fetch(`${url}/metrics`, { headers: { connection: 'close' } })).text()
    assert.equal(totalRequests(metrics), 20, 'a scrape did not see every worker')
  }

  process.kill(pids[0]!, 'SIGKILL')
  await workerPids(3)
  for (let i = 0; i < 10; i++) assert.equal(await request(url), 200)

  child.kill('SIGTERM')
  assert.equal(await exited, 0)
})
