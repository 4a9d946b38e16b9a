/**
 * Prints the Kubernetes manifests a stack would apply, as multi-document YAML, without AWS or a
 * cluster: the program runs under mocks (tools/mock-program.ts) and the inputs of every
 * Kubernetes resource it declared are written out. Secret values are redacted.
 *
 *   node infra/tools/render-manifests.ts <stack> [--out file]
 */
import { writeFileSync } from 'node:fs'
import { stringify } from 'yaml'
import { runProgram, type DeclaredResource } from './mock-program.ts'

const KIND_ORDER = ['Namespace', 'ConfigMap', 'Secret', 'DaemonSet', 'Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'ServiceMonitor', 'PrometheusRule']

/** `kubernetes:apps/v1:Deployment` -> { apiVersion: 'apps/v1', kind: 'Deployment' }; core has no group. */
export function apiVersionKind(type: string): { apiVersion: string; kind: string } {
  const [, groupVersion = '', kind = ''] = type.split(':')
  const [group, version] = groupVersion.split('/')
  return { apiVersion: group === 'core' ? String(version) : `${group}/${version}`, kind }
}

/** Pulumi's wire form of a secret value: `{ <sig>: <secret sig>, value }`. */
const SECRET_SIG = '4dabf18193072939515e22adb298388d'

/** Replaces secret-wrapped values by what they wrap (Secrets are then redacted by field). */
function unwrapSecrets(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(unwrapSecrets)
  if (v === null || typeof v !== 'object') return v
  const o = v as Record<string, unknown>
  if (SECRET_SIG in o) return unwrapSecrets(o['value'])
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrapSecrets(x)]))
}

function redact(kind: string, body: Record<string, unknown>): Record<string, unknown> {
  if (kind !== 'Secret') return body
  const out = { ...body }
  for (const field of ['data', 'stringData']) {
    const values = out[field]
    if (values && typeof values === 'object') out[field] = Object.fromEntries(Object.keys(values).map((k) => [k, '<redacted>']))
  }
  return out
}

export function manifestsOf(resources: readonly DeclaredResource[]): Record<string, unknown>[] {
  const docs = resources
    .filter((r) => r.type.startsWith('kubernetes:') && !r.type.startsWith('pulumi:providers'))
    .map((r) => {
      const { apiVersion, kind } = apiVersionKind(r.type)
      const { apiVersion: _a, kind: _k, metadata, ...rest } = unwrapSecrets(r.inputs) as DeclaredResource["inputs"]
      return { apiVersion, kind, metadata, ...redact(kind, rest) }
    })
  const rank = (k: string) => (KIND_ORDER.indexOf(k) + KIND_ORDER.length + 1) % (KIND_ORDER.length + 1)
  return docs.sort((a, b) => rank(a.kind) - rank(b.kind)
    || String(a.metadata?.namespace ?? '').localeCompare(String(b.metadata?.namespace ?? ''))
    || String(a.metadata?.name ?? '').localeCompare(String(b.metadata?.name ?? '')))
}

export function toYaml(docs: readonly Record<string, unknown>[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0, sortMapEntries: false })).join('---\n')
}

/** The file render-manifests prints for a stack's declared resources (the golden files' content). */
export function renderManifests(stack: string, resources: readonly DeclaredResource[]): string {
  return `# Kubernetes manifests for stack ${stack}, rendered offline from the program's inputs.\n${toYaml(manifestsOf(resources))}`
}

if (import.meta.main) {
  const args = process.argv.slice(2)
  const stack = args[0]
  const outIndex = args.indexOf('--out')
  if (!stack || stack.startsWith('-')) {
    console.error('usage: node infra/tools/render-manifests.ts <stack> [--out file]')
    process.exit(2)
  }
  const run = await runProgram(stack)
  if (run.error) {
    console.error(run.error)
    process.exit(1)
  }
  const yaml = renderManifests(stack, run.resources)
  if (outIndex >= 0 && args[outIndex + 1]) writeFileSync(args[outIndex + 1]!, yaml)
  else process.stdout.write(yaml)
}
