/**
 * A log destination that takes nothing, or whose reader is gone, must not keep the gateway from
 * exiting: the logger flushes synchronously at exit, and a full non-blocking pipe (EAGAIN) and a
 * closed one (EPIPE) were each retried there forever.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { after, test } from 'node:test'

const LOGGER = new URL('../../../gateway/src/telemetry/logger.ts', import.meta.url).href

/** A child process running `source` (a module that imports the logger), with stdin and stdout as given. */
function startChild(source: string, stdio: ['ignore' | 'pipe', 'pipe', 'pipe']): { child: ChildProcessByStdio<Writable | null, Readable, Readable>; stderr: () => string } {
  const dir = mkdtempSync(join(tmpdir(), 'velox-log-stall-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const script = join(dir, 'child.ts')
  writeFileSync(script, source)
  const child = spawn(process.execPath, [script], { stdio }) as ChildProcessByStdio<Writable | null, Readable, Readable>
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c))
  return { child, stderr: () => stderr }
}

/** The child exited 0 after saying `exiting` on stderr, within 15 s (it is killed otherwise). */
async function assertExits(started: ReturnType<typeof startChild>, exited: Promise<number | null>, what: string): Promise<void> {
  const limit = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 15_000).unref())
  const outcome = await Promise.race([exited, limit])
  if (outcome === 'hung') started.child.kill('SIGKILL')
  assert.notEqual(outcome, 'hung', `the process did not exit ${what} (stderr: ${started.stderr().slice(-500)})`)
  assert.equal(outcome, 0)
  assert.match(started.stderr(), /exiting/, `it reached its exit ${what}`)
}

/**
 * Once the child's first line arrived (its logger is writing), the read end of its stdout goes
 * away and the child is told to go on (a line on stdin). Gives back its exit, still to come.
 */
async function readerLeaves(started: ReturnType<typeof startChild>): Promise<{ exited: Promise<number | null> }> {
  const { child } = started
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  await new Promise((resolve) => child.stdout.once('data', resolve))
  child.stdout.destroy()
  child.stdin!.write('stop\n')
  return { exited }
}

test('the exit flush gives up on a log pipe nobody reads', async () => {
  const started = startChild(
    `import net from 'node:net'
import { createLogger, droppedLogLines } from ${JSON.stringify(LOGGER)}
// libuv leaves a pipe it opened non-blocking: a full one answers EAGAIN.
const pipe = new net.Socket({ fd: 1, readable: false, writable: true })
const logger = createLogger('info', 1)
const line = 'x'.repeat(1000)
// About 20 MB of lines: past the 16 MiB that may wait, the rest are dropped and counted.
for (let i = 0; i < 20000; i++) logger.info({ i, line }, 'filling the log pipe')
setTimeout(() => { process.stderr.write('dropped full=' + droppedLogLines().full + '\\nexiting\\n'); process.exit(0) }, 100)
void pipe
`,
    ['ignore', 'pipe', 'pipe'],
  )
  // Never read: the pipe fills, and stays full.
  started.child.stdout.pause()
  const exited = new Promise<number | null>((resolve) => started.child.on('exit', (code) => resolve(code)))
  await assertExits(started, exited, 'with its log pipe full')
  const full = Number(/dropped full=(\d+)/.exec(started.stderr())?.[1])
  assert.ok(full > 2000 && full < 20000, `${full} of 20000 lines counted as dropped (about 16 MiB of them fit)`)
})

test('the exit flush gives up on a log pipe whose reader is gone', async () => {
  const started = startChild(
    `import { createLogger } from ${JSON.stringify(LOGGER)}
const logger = createLogger('info', 1)
logger.info('started')
process.stdin.once('data', () => {
  // The reader closed its end: every write from here on fails with EPIPE. The first line is
  // written at once (asynchronously); the second waits behind it, for the exit flush.
  logger.info('stopping')
  logger.info('stopped')
  process.stderr.write('exiting\\n')
  process.exit(0)
})
`,
    ['pipe', 'pipe', 'pipe'],
  )
  await assertExits(started, (await readerLeaves(started)).exited, "with its log pipe's reader gone")
})

test('lines written after the reader is gone are counted as dropped', async () => {
  const started = startChild(
    `import { createLogger, droppedLogLines } from ${JSON.stringify(LOGGER)}
const logger = createLogger('info', 1)
logger.info('started')
process.stdin.once('data', () => {
  // Lines go on until the destination has seen its EPIPE (asynchronously) and counts them.
  const give = Date.now() + 10_000
  const next = () => {
    logger.info('after the reader left')
    if (droppedLogLines().gone > 0 || Date.now() > give) {
      process.stderr.write('dropped gone=' + droppedLogLines().gone + '\\nexiting\\n')
      process.exit(0)
    }
    setImmediate(next)
  }
  next()
})
`,
    ['pipe', 'pipe', 'pipe'],
  )
  await assertExits(started, (await readerLeaves(started)).exited, "with its log pipe's reader gone")
  assert.ok(Number(/dropped gone=(\d+)/.exec(started.stderr())?.[1]) > 0, started.stderr())
})
