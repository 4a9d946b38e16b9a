/**
 * The chaos suite's memory measure (gateway/chaos/lib/inspect.ts) tells retained memory from
 * garbage: against a real child process under `--inspect=127.0.0.1:0`, allocating garbage leaves
 * the post-GC figure where it was, and keeping objects (a leak) moves it by their size.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Inspector } from '../../../gateway/chaos/lib/inspect.ts'

const CHILD = `
globalThis.kept = []
process.on('message', (m) => {
  if (m === 'garbage') for (let i = 0; i < 20; i++) { let junk = []; for (let j = 0; j < 50000; j++) junk.push({ j, s: 'g' + j }); junk = null }
  if (m === 'leak') for (let j = 0; j < 200000; j++) globalThis.kept.push({ j, s: 'k' + j })
  process.send(m)
})
process.send('ready')
`

const child = spawn(process.execPath, ['--inspect=127.0.0.1:0', '-e', CHILD], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
after(() => child.kill('SIGKILL'))

async function debuggerUrl(): Promise<string> {
  let err = ''
  for await (const chunk of child.stderr!) {
    err += String(chunk)
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(err)
    if (m) return m[1]!
  }
  throw new Error(`no inspector address:\n${err}`)
}

async function ask(m: string): Promise<void> {
  child.send(m)
  for (;;) {
    const [reply] = (await once(child, 'message')) as [string]
    if (reply === m) return
  }
}

test('post-GC heap ignores garbage and sees what is kept', async () => {
  const ready = once(child, 'message')
  const inspector = await Inspector.connect(await debuggerUrl())
  try {
    await ready
    const base = await inspector.collectAndMeasure()
    assert.ok(base.heapUsed > 1e6 && base.rss > base.heapUsed, `plausible figures: ${JSON.stringify(base)}`)
    await ask('garbage') // about 1,000,000 short-lived objects
    const afterGarbage = await inspector.collectAndMeasure()
    assert.ok(afterGarbage.heapUsed < base.heapUsed * 1.1, `garbage is not retained: ${base.heapUsed} -> ${afterGarbage.heapUsed}`)
    await ask('leak') // 200,000 objects kept reachable
    const afterLeak = await inspector.collectAndMeasure()
    assert.ok(afterLeak.heapUsed > afterGarbage.heapUsed + 5e6, `a leak is seen: ${afterGarbage.heapUsed} -> ${afterLeak.heapUsed}`)
  } finally {
    inspector.close()
  }
})
