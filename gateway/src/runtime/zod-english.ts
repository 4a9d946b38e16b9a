/**
 * zod's index imports its translations of the error messages, every one of them (48 modules,
 * 0.3 MB of source, most of it stored two bytes per character): about 2 MB resident for the life
 * of the process, for `z.locales.xx()`, which the gateway never calls. Its config errors are
 * English, as the README shows them, and zod sets English itself (classic/schemas.js imports
 * `locales/en.js` and configures it on the first schema built). So while the gateway's modules
 * load (main.ts, before its imports, until main() runs), a module hook serves zod's locale index
 * as English alone: `z.locales` has `en` and nothing else. Tests and tools that import zod
 * without main.ts get the whole index, with the same English messages.
 * `boot-modules.test.ts` checks that no other locale loads and that the messages are unchanged.
 */
import { registerHooks, type ModuleHooks } from 'node:module'

/** The ES module build's locale index (the gateway imports zod as an ES module). */
const LOCALE_INDEX = '/node_modules/zod/v4/locales/index.js'
const ENGLISH_ONLY = "export { default as en } from './en.js'\n"

let hooks: ModuleHooks | null = null

export function startEnglishOnlyZod(): void {
  hooks ??= registerHooks({
    load(url, context, nextLoad) {
      if (url.endsWith(LOCALE_INDEX)) return { format: 'module', source: ENGLISH_ONLY, shortCircuit: true }
      return nextLoad(url, context)
    },
  })
}

export function endEnglishOnlyZod(): void {
  hooks?.deregister()
  hooks = null
}
