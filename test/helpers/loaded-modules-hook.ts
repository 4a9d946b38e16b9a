/**
 * Preloaded into a gateway process (`NODE_OPTIONS=--import=<this file>`) by tests that check what
 * a configuration loads: records every module the process resolves (ESM imports and CommonJS
 * requires alike, through module.registerHooks) and, on SIGUSR2, writes them with Node's own
 * list of loaded built-in modules to the file named by VELOX_TEST_LOADED_MODULES.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { registerHooks } from 'node:module'

const out = process.env.VELOX_TEST_LOADED_MODULES
if (out === undefined) throw new Error('VELOX_TEST_LOADED_MODULES: the file to write the loaded modules to')
const resolved = new Set<string>()
registerHooks({
  resolve(specifier, context, nextResolve) {
    const result = nextResolve(specifier, context)
    resolved.add(result.url)
    return result
  },
})
process.on('SIGUSR2', () => {
  // Written beside, then renamed: the test polls for the file and must never read half of it.
  writeFileSync(`${out}.tmp`, JSON.stringify({ resolved: [...resolved], builtins: (process as unknown as { moduleLoadList: string[] }).moduleLoadList }))
  renameSync(`${out}.tmp`, out)
})
