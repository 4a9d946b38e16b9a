/**
 * Keeps the keys of `auth.keysFile` current without a restart. A Kubernetes Secret mounted as a
 * volume is updated by swapping a symlink in its directory, which a watch on the file itself
 * misses, so the directory is watched, and the file is also re-checked on an interval (content
 * digest) in case no event arrives. A file that cannot be read or fails validation is refused:
 * the keys in force stay, and the refusal is logged.
 */
import { createHash } from 'node:crypto'
import { watch, type FSWatcher } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { basename, dirname } from 'node:path'
import type { ApiKeyConfig } from './config.ts'
import { KeysFileSchema } from './config.ts'

export interface KeysFileEvents {
  loaded(keys: readonly ApiKeyConfig[]): void
  refused(reason: string): void
}

const POLL_MS = 5_000

// Loaded with the first keys file: a gateway without one never needs the YAML parser.
const requireModule = createRequire(import.meta.url)
const parseYaml = (text: string): unknown => (requireModule('yaml') as typeof import('yaml')).parse(text)

/** Reads and validates a keys file; throws with the path of the first problem. */
export async function readKeysFile(path: string): Promise<ApiKeyConfig[]> {
  const text = await readFile(path, 'utf8')
  const parsed = KeysFileSchema.safeParse(parseYaml(text) ?? { keys: [] })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new Error(`${path}: ${issue.path.join('.')}: ${issue.message}`)
  }
  return parsed.data.keys
}

export class KeysFileWatcher {
  readonly path: string
  readonly #events: KeysFileEvents
  #digest = ''
  #watcher: FSWatcher | null = null
  #poll: NodeJS.Timeout | null = null
  #checking: Promise<void> | null = null

  constructor(path: string, events: KeysFileEvents) {
    this.path = path
    this.#events = events
  }

  /** Loads the file once (resolves after the first attempt, loaded or refused), then follows it. */
  async start(): Promise<void> {
    await this.check()
    try {
      this.#watcher = watch(dirname(this.path), (_event, name) => {
        if (name === null || name === basename(this.path) || name.startsWith('..')) void this.check()
      })
      this.#watcher.on('error', () => {})
    } catch {
      // No directory watch (the directory is missing, or the platform refuses): polling alone.
    }
    this.#poll = setInterval(() => void this.check(), POLL_MS)
    this.#poll.unref()
  }

  /** Re-reads the file; applies it if its content changed. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = null
    })
    return this.#checking
  }

  async #check(): Promise<void> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      this.#refuse(`cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
      return
    }
    const digest = createHash('sha256').update(text).digest('hex')
    if (digest === this.#digest) return
    try {
      const keys = await readKeysFile(this.path)
      this.#digest = digest
      this.#events.loaded(keys)
    } catch (err) {
      this.#digest = digest // refused once per content, not at every poll
      this.#refuse((err as Error).message)
    }
  }

  #refuse(reason: string): void {
    this.#events.refused(reason)
  }

  close(): void {
    this.#watcher?.close()
    this.#watcher = null
    if (this.#poll !== null) clearInterval(this.#poll)
    this.#poll = null
  }
}
