/**
 * Watches a config file for changes. The directory is watched, not the file, because editors and
 * Kubernetes ConfigMap volumes replace files (rename, symlink swap) rather than write in place.
 * Events are debounced and only a change of content fires.
 */
import { watch, readFileSync, type FSWatcher } from 'node:fs'
import { createHash } from 'node:crypto'
import { basename, dirname } from 'node:path'

export function watchConfigFile(file: string, onChange: () => void, debounceMs = 200): { close(): void } {
  const digest = (): string | null => {
    try {
      return createHash('sha256').update(readFileSync(file)).digest('hex')
    } catch {
      return null // mid-replace: the next event reads the new file
    }
  }
  let last = digest()
  let timer: NodeJS.Timeout | null = null
  const name = basename(file)
  const watcher: FSWatcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
    // ConfigMap swaps touch `..data`, not the file's own name.
    if (changed !== null && changed !== name && !changed.startsWith('..')) return
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      const now = digest()
      if (now === null || now === last) return
      last = now
      onChange()
    }, debounceMs)
    timer.unref()
  })
  watcher.on('error', () => watcher.close())
  return {
    close: () => {
      if (timer !== null) clearTimeout(timer)
      watcher.close()
    },
  }
}
