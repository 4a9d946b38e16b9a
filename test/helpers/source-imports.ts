/**
 * What a TypeScript source file reaches by relative path, read as text: the layer test's import
 * graph (test/gateway/layers.test.ts) and the image's source set (test/gateway/image-layout.test.ts).
 */
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

/** Every `.ts` file under `dir`, at any depth. */
export function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name))
}

/** Relative specifiers of every static import, re-export and dynamic import in a file. */
export function importsOf(source: string): string[] {
  const out: string[] = []
  for (const m of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) {
    const spec = m[1] ?? m[2] ?? m[3]!
    if (spec.startsWith('.')) out.push(spec)
  }
  return out
}

/** Relative paths a file opens at run time as `new URL('./x', import.meta.url)` (a worker's script, a data file). */
export function fileUrlsOf(source: string): string[] {
  return [...source.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url/g)].map((m) => m[1]!)
}
