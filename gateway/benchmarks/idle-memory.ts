/**
 * Idle memory of one gateway process, as an operator sees it: starts the gateway the way they do
 * (`npm start` by default, or any command after `--`), waits for `upstream pools warmed`, lets it
 * idle, then reads the node process's `/proc/<pid>/smaps_rollup` and `/proc/<pid>/status`.
 *
 *   npx node gateway/benchmarks/idle-memory.ts [--runs 3] [--idle 10] [--cwd DIR]... [-- <command...>]
 *
 * With several `--cwd` (checkouts to compare, e.g. a `git archive` of main beside this tree), the
 * runs alternate between them, so the builds are measured side by side under the same conditions.
 * No GC is forced and nothing is injected into the measured process: the figure is what `ps`
 * shows. The port is VELOX_PORT=0 unless the environment sets one.
 */
import { spawn } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'

const dashdash = process.argv.indexOf('--')
const { values } = parseArgs({
  args: process.argv.slice(2, dashdash === -1 ? undefined : dashdash),
  options: {
    runs: { type: 'string', default: '3' },
    idle: { type: 'string', default: '10' },
    cwd: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
  },
})
const dirs = values.cwd ?? [process.cwd()]
const command = dashdash === -1 ? ['npm', 'start', '--silent'] : process.argv.slice(dashdash + 1)
const runs = Number(values.runs)
const idleSeconds = Number(values.idle)

interface Sample {
  cwd: string
  rssMB: number
  anonMB: number
  fileMB: number
  privateMB: number
  bootMs: number
}

const kB = (text: string, key: string): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)
  return m === null ? Number.NaN : Number(m[1])
}

/** The node process under `root` (npm and sh may sit in between): the deepest descendant named node. */
function nodeDescendant(root: number): number | null {
  const children = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      const list = children.get(ppid) ?? []
      list.push(Number(entry))
      children.set(ppid, list)
    } catch {
      // gone meanwhile
    }
  }
  let found: number | null = null
  const walk = (pid: number): void => {
    let comm = ''
    try {
      comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim()
    } catch {
      return
    }
    if (comm === 'node' || comm.startsWith('node ') || comm === 'MainThread') found = pid
    for (const c of children.get(pid) ?? []) walk(c)
  }
  walk(root)
  return found
}

async function once(cwd: string): Promise<Sample> {
  const started = performance.now()
  const child = spawn(command[0]!, command.slice(1), {
    cwd,
    env: { VELOX_PORT: '0', ...process.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let log = ''
  const warmed = new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8')
      if (log.includes('upstream pools warmed')) resolve(performance.now() - started)
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => reject(new Error(`gateway exited (${code}) before warming:\n${log}`)))
  })
  try {
    const bootMs = await warmed
    await new Promise((r) => setTimeout(r, idleSeconds * 1000))
    const pid = nodeDescendant(child.pid!)
    if (pid === null) throw new Error('no node process under the command')
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return {
      cwd,
      rssMB: kB(status, 'VmRSS') / 1000,
      anonMB: kB(status, 'RssAnon') / 1000,
      fileMB: kB(status, 'RssFile') / 1000,
      privateMB: (kB(rollup, 'Private_Clean') + kB(rollup, 'Private_Dirty')) / 1000,
      bootMs,
    }
  } finally {
    const exited = new Promise((r) => child.once('exit', r))
    try {
      process.kill(-child.pid!, 'SIGTERM')
    } catch {
      // already gone
    }
    await exited
  }
}

const samples: Sample[] = []
const loadBefore = loadavg()[0]!
for (let i = 0; i < runs; i++) for (const dir of dirs) samples.push(await once(dir))
const loadAfter = loadavg()[0]!
if (values.json) {
  process.stdout.write(`${JSON.stringify({ command, idleSeconds, samples, loadavg: [loadBefore, loadAfter] })}\n`)
} else {
  const f = (n: number): string => n.toFixed(1)
  process.stdout.write(`command: ${command.join(' ')}  (idle ${idleSeconds} s after "upstream pools warmed"; load average ${loadBefore.toFixed(2)} -> ${loadAfter.toFixed(2)})\n`)
  process.stdout.write('| run | checkout | VmRSS MB | anonymous MB | file-backed MB | private MB | ready after ms |\n|---|---|--:|--:|--:|--:|--:|\n')
  samples.forEach((s, i) => process.stdout.write(`| ${Math.floor(i / dirs.length) + 1} | ${s.cwd} | ${f(s.rssMB)} | ${f(s.anonMB)} | ${f(s.fileMB)} | ${f(s.privateMB)} | ${s.bootMs.toFixed(0)} |\n`))
}
