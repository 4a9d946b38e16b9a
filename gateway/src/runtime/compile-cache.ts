/**
 * Node's compile cache (`NODE_COMPILE_CACHE`, set by `npm start` and the image) keeps every
 * module's cache entry in memory until the process exits, to write the new ones then: the V8 code
 * cache read from disk and, for a TypeScript file, its stripped source. For the gateway's ~800
 * modules that is about 5 MB of the malloc heap that nothing reads again once a module is
 * compiled (docs/benchmarks.md, "Idle memory"). `module.flushCompileCache()` writes what is new
 * (nothing, once the cache is warm) and lets those entries go; modules loaded later are cached
 * as before.
 *
 * Importing this file releases the entries of every module compiled so far. main.ts imports it
 * first: ES modules are all compiled before any of them runs, and the first to run is this one,
 * so the CommonJS modules (fastify and its dependencies, required as the ES modules run) reuse
 * that memory instead of growing the heap. main() and the boot GC release the rest.
 */
import { flushCompileCache } from 'node:module'

/** Releases the compile cache entries of the modules loaded so far (a no-op without a cache). */
export function releaseCompileCache(): void {
  flushCompileCache()
}

releaseCompileCache()
