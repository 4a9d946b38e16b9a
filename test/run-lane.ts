/**
 * One lane of a half of `npm test` (test/run-part.ts): a process that runs test files one after
 * another, each as one test named after the file, so the files it runs share what they import
 * (fastify, undici, the gateway's modules: about 0.3 s of CPU a process pays for each file again).
 * Each file's tests and top-level hooks nest under its test, so `before`/`after` stay the file's.
 *
 * The lanes of one half take their files from one queue, in the order test/run-part.ts wrote it
 * (longest first): a lane claims the next unclaimed file by creating its claim file exclusively,
 * so no file runs twice and a lane that finishes early takes more.
 *
 *   VELOX_TEST_QUEUE=<dir> node test/run-lane.ts
 */
import { join } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { claim, readQueue } from './run-part.ts'

/** A file fails once it has run this long, its tests included (they inherit it): a hang ends. */
const FILE_TIMEOUT_MS = 300_000
/** After its last file, a lane still held open by something a test left running exits failed. */
const EXIT_GRACE_MS = 30_000

if (import.meta.main) {
  const dir = process.env['VELOX_TEST_QUEUE']
  if (dir === undefined) throw new Error('VELOX_TEST_QUEUE is not set (test/run-part.ts starts the lanes)')
  const queue = readQueue(dir)
  for (let i = 0; i < queue.files.length; i++) {
    if (!claim(dir, i)) continue
    const file = queue.files[i]!
    await test(file, { timeout: FILE_TIMEOUT_MS }, async () => {
      await import(pathToFileURL(join(queue.root, file)).href)
    })
  }
  setTimeout(() => {
    process.stderr.write(`run-lane: still running ${EXIT_GRACE_MS / 1000} s after its last file; open: ${process.getActiveResourcesInfo().join(', ')}\n`)
    process.exit(1)
  }, EXIT_GRACE_MS).unref()
}
