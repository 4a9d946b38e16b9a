/**
 * Graceful shutdown of the real process: "lets in-flight requests and streams finish for up to
 * server.shutdownTimeoutMs". A request whose body is still arriving is in flight too, but drain()
 * counts only proxied calls, so it sees nothing to wait for and cuts that connection at once.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startSimulator, type Simulator } from '../../gateway/src/simulator/server.ts'

const MAIN = new URL('../../gateway/src/main.ts', import.meta.url).pathname
const children = new Set<ChildProcess>()
const sims: Simulator[] = []
after(async () => {
  for (const c of children) c.kill('SIGKILL')
  await Promise.all(sims.map((s) => s.close()))
})

async function startMain(upstreamUrl: string): Promise<{ child: ChildProcess; port: number; exited: Promise<number | null> }> {
  const dir = mkdtempSync(join(tmpdir(), 'velox-review-'))
  const config = join(dir, 'gateway.yaml')
  writeFileSync(config, `log: { level: info }\nserver: { shutdownTimeoutMs: 5000 }\nupstreams:\n  - name: sim\n    url: ${upstreamUrl}\n    models: ["*"]\n`)
  const child = spawn(process.execPath, [MAIN, '--config', config], { env: { ...process.env, VELOX_PORT: '0', VELOX_HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  const exited = once(child, 'exit').then(([code]) => {
    children.delete(child)
    return code as number | null
  })
  let out = ''
  child.stderr!.on('data', (c: Buffer) => (out += c))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line:\n${out}`)), 15_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c
      const m = /"port":(\d+)[^\n]*"msg":"velox gateway listening"/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(Number(m[1]))
      }
    })
  })
  for (let i = 0; i < 200; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200) break
    await new Promise((r) => setTimeout(r, 25))
  }
  return { child, port, exited }
}

test(
  'SIGTERM lets a request whose body is still uploading finish',
  async () => {
    const sim = await startSimulator({ tokens: 4 })
    sims.push(sim)
    const { child, port, exited } = await startMain(sim.url)
    const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'a prompt that takes a moment to upload' }] })
    const socket = net.connect(port, '127.0.0.1')
    let response = ''
    socket.on('data', (d: Buffer) => (response += d.toString('latin1')))
    socket.on('error', () => undefined)
    const closed = once(socket, 'close')
    await once(socket, 'connect')
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 20)}`)
    await new Promise((r) => setTimeout(r, 100))
    child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    if (!socket.destroyed) socket.write(body.slice(20))
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3_000))])
    socket.destroy()
    assert.equal(await exited, 0)
    assert.match(response, /^HTTP\/1\.1 200 /, `the upload in progress at SIGTERM was cut: ${JSON.stringify(response.slice(0, 80))}`)
  },
)
