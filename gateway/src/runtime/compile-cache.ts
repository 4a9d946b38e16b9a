/**
 * Node's compile cache (`NODE_COMPILE_CACHE`, set by `npm start` and the image) keeps every
 * module's cache entry in memory until the process exits, to write the new ones then: the V8 code
 * cache read from disk and, for a TypeScript file, its stripped source. For the gateway's ~800
 * modules that is about 5 MB of the malloc heap that nothing reads again once a module is
 * compiled (docs/benchmarks.md, "Idle memory"). `module.flushCompileCache()` writes what is new
 * (nothing, once the cache is warm) and lets those entries go; modules loaded later are cached
 * as before.
 *
 * Released at once at the end, the freed entries stay behind as holes in the malloc heap. So
 * startImportRelease() registers a module hook that releases them every RELEASE_EVERY modules
 * loaded, and each batch reuses the memory the one before it held. main.ts calls it first and
 * imports everything else with `await import()` after it, so that the hook sees the
 * whole module graph (ES modules are all compiled before any of them runs: imported statically,
 * they would be loaded before the hook exists). main() releases the rest and removes the hook;
 * the boot GC releases what booting loaded on first use.
 */
import { flushCompileCache, registerHooks, type ModuleHooks } from 'node:module'

/** Modules loaded between two releases while the imports run (5 gave the same as 20). */
const RELEASE_EVERY = 20

let hooks: ModuleHooks | null = null

/** Releases the compile cache entries of the modules loaded so far (a no-op without a cache). */
export function releaseCompileCache(): void {
  flushCompileCache()
}

/** Releases them now and then every RELEASE_EVERY modules loaded, until endImportRelease(). */
export function startImportRelease(): void {
  releaseCompileCache()
  if (hooks !== null) return
  let loaded = 0
  hooks = registerHooks({
    load(url, context, nextLoad) {
      const result = nextLoad(url, context)
      if (++loaded % RELEASE_EVERY === 0) flushCompileCache()
      return result
    },
  })
}

/** Stops releasing on module loads and releases the rest (main() calls it once every import has run). */
export function endImportRelease(): void {
  hooks?.deregister()
  hooks = null
  releaseCompileCache()
}
