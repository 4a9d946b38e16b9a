/** The gateway as operators run it: `node gateway/src/main.ts` in a child process. */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eventually } from './eventually.ts'

export const MAIN = new URL('../../gateway/src/main.ts', import.meta.url).pathname

export interface GatewayProcess {
  child: ChildProcess
  url: string
  /** Everything the process wrote so far, stdout and stderr. */
  logs(): string
  /** Resolves with the exit code. */
  exited: Promise<number | null>
}

const running = new Set<ChildProcess>()

/** Kills every gateway process still running; call from `after()`. */
export function killGatewayProcesses(): void {
  for (const c of running) c.kill('SIGKILL')
}

/** Writes a config file into a fresh temporary directory and returns its path. */
export function configFile(yaml: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'velox-test-')), 'gateway.yaml')
  writeFileSync(path, yaml)
  return path
}

/** Starts main.ts on a free port (127.0.0.1) and resolves once it logged that it listens. */
export async function startGatewayProcess(args: string[], env: Record<string, string> = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, VELOX_PORT: '0', VELOX_HOST: '127.0.0.1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  const exited = once(child, 'exit').then(([code]) => {
    running.delete(child)
    return code as number | null
  })
  let out = ''
  child.stderr!.on('data', (c: Buffer) => (out += c))
  const url = await new Promise<string>((resolve, reject) => {
    // Generous: a loaded machine can take many seconds to start a process. A child that never
    // listens is killed, so a failed start cannot leave it running and the test file hanging.
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`no listening line:\n${out}`))
    }, 60_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c
      const m = /"port":(\d+)[^\n]*"msg":"velox gateway listening"/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(`http://127.0.0.1:${m[1]}`)
      }
    })
    void exited.then((code) => reject(new Error(`exited ${code}:\n${out}`)))
  })
  return { child, url, logs: () => out, exited }
}

export async function waitReady(url: string): Promise<void> {
  await eventually(async () => (await fetch(`${url}/readyz`).catch(() => null))?.status === 200, { what: `${url} to become ready`, intervalMs: 25 })
}
