/**
 * Validates Kubernetes objects against the Kubernetes OpenAPI schema, with kubernetes-models
 * (JSON-schema validators and TypeScript types generated from the upstream OpenAPI spec).
 *
 * The clusters run Kubernetes 1.35 (infra/lib/stack-config.ts); no kubernetes-models release is
 * generated from 1.35 exactly, so every object is checked against the two releases that bracket
 * it: 5.1.0 (Kubernetes 1.36.0) and 4.5.1 (1.33.0, installed as `kubernetes-models-1.33`). An
 * object both accept uses only fields both versions have, so 1.35 has them too.
 *
 * Two checks per object and version:
 * - the model's `validate()` (ajv over the OpenAPI schema: required fields, types, enums, formats
 *   such as quantities and int-or-string), and
 * - the same object as a TypeScript object literal typed with the model's interface, which also
 *   rejects fields the schema does not define (the generated validators accept unknown fields,
 *   while the API server's strict field validation refuses them).
 *
 * Custom resources (the Prometheus Operator's ServiceMonitor and PrometheusRule) are not in the
 * Kubernetes OpenAPI spec: they are checked the same two ways against the models generated from
 * the operator's CRDs (@kubernetes-models/prometheus-operator), which is what the API server
 * validates them with once the CRDs are installed.
 */
import { createRequire } from 'node:module'
import { join } from 'node:path'
import ts from 'typescript'
import { REPO_ROOT } from '../../../infra/tools/stack-files.ts'

export const SCHEMA_PACKAGES = [
  { pkg: 'kubernetes-models', kubernetes: '1.36.0' },
  { pkg: 'kubernetes-models-1.33', kubernetes: '1.33.0' },
] as const

/** The cluster version the objects are applied to (the EKS default in stack config). */
export const CLUSTER_VERSION = '1.35'

/**
 * Stable API versions a 1.35 API server serves. kubernetes-models also carries APIs removed long
 * ago (policy/v1beta1, extensions/v1beta1...), so its validators alone would accept them; beta
 * APIs are off by default on EKS. From the Kubernetes deprecation guide.
 */
export const SERVED_API_VERSIONS: ReadonlySet<string> = new Set([
  'v1', 'apps/v1', 'batch/v1', 'autoscaling/v1', 'autoscaling/v2', 'policy/v1', 'rbac.authorization.k8s.io/v1',
  'networking.k8s.io/v1', 'scheduling.k8s.io/v1', 'storage.k8s.io/v1', 'admissionregistration.k8s.io/v1',
  'apiextensions.k8s.io/v1', 'coordination.k8s.io/v1', 'discovery.k8s.io/v1', 'certificates.k8s.io/v1',
  'node.k8s.io/v1', 'resource.k8s.io/v1', 'flowcontrol.apiserver.k8s.io/v1', 'events.k8s.io/v1',
])

/**
 * API versions served by CRDs rather than by Kubernetes itself, and the package whose models are
 * generated from those CRDs' OpenAPI schemas.
 */
export const CRD_SCHEMA_PACKAGES: Readonly<Record<string, { readonly pkg: string; readonly crds: string }>> = {
  'monitoring.coreos.com/v1': { pkg: '@kubernetes-models/prometheus-operator', crds: 'the Prometheus Operator CRDs' },
}

export interface K8sObject { readonly apiVersion: string; readonly kind: string; readonly metadata?: { readonly name?: string; readonly namespace?: string }; readonly [k: string]: unknown }

/** `apps/v1` -> `apps/v1`, core `v1` -> `v1`: the package's module path for an apiVersion. */
function modulePath(apiVersion: string): string {
  return apiVersion
}

function label(o: K8sObject): string {
  return `${o.apiVersion} ${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name ?? '?'}`
}

const require = createRequire(join(REPO_ROOT, 'package.json'))

type ModelClass = new (data: unknown) => { validate(): void }

async function modelClass(pkg: string, o: K8sObject): Promise<ModelClass | undefined> {
  const specifier = `${pkg}/${modulePath(o.apiVersion)}`
  let mod: Record<string, unknown>
  try {
    // kubernetes-models 4.x (the 1.33 alias) is CommonJS; the other packages are ES modules.
    mod = pkg === 'kubernetes-models-1.33' ? require(specifier) as Record<string, unknown> : await import(specifier) as Record<string, unknown>
  } catch {
    return undefined
  }
  return mod[o.kind] as ModelClass | undefined
}

/** Schema problems of each object (empty when every object is valid in both versions). */
export async function schemaProblems(objects: readonly K8sObject[]): Promise<string[]> {
  const problems: string[] = []
  for (const o of objects) {
    const crd = CRD_SCHEMA_PACKAGES[o.apiVersion]
    if (crd) {
      const Model = await modelClass(crd.pkg, o)
      if (!Model) { problems.push(`${label(o)}: ${crd.crds} define no ${o.kind} in ${o.apiVersion}`); continue }
      try {
        new Model(o).validate()
      } catch (err) {
        problems.push(`${label(o)}: ${crd.crds}: ${err instanceof Error ? err.message : String(err)}`)
      }
      continue
    }
    if (!SERVED_API_VERSIONS.has(o.apiVersion)) problems.push(`${label(o)}: ${o.apiVersion} is not served by Kubernetes ${CLUSTER_VERSION}`)
    for (const { pkg, kubernetes } of SCHEMA_PACKAGES) {
      const Model = await modelClass(pkg, o)
      if (!Model) { problems.push(`${label(o)}: Kubernetes ${kubernetes} has no ${o.kind} in ${o.apiVersion}`); continue }
      try {
        new Model(o).validate()
      } catch (err) {
        problems.push(`${label(o)}: Kubernetes ${kubernetes}: ${err instanceof Error ? err.message : String(err)}`)
      }
    }
  }
  problems.push(...unknownFieldProblems(objects))
  return problems
}

/** Declaration files read by unknownFieldProblems, by path (they do not change during a run). */
const parsedDeclarations = new Map<string, ts.SourceFile>()

/**
 * Type-checks every object as a literal of its model interface, in one in-memory program:
 * excess-property errors name fields the schema does not define.
 */
export function unknownFieldProblems(objects: readonly K8sObject[]): string[] {
  const file = join(REPO_ROOT, 'test', 'infra', '__k8s_schema_check__.ts')
  const lines: string[] = []
  const owners: { line: number; object: K8sObject; kubernetes: string }[] = []
  objects.forEach((o, i) => {
    const crd = CRD_SCHEMA_PACKAGES[o.apiVersion]
    const packages = crd ? [{ pkg: crd.pkg, kubernetes: crd.crds }] : SCHEMA_PACKAGES
    packages.forEach(({ pkg, kubernetes }, j) => {
      const type = `I${o.kind}`
      lines.push(`import type { ${type} as T${i}_${j} } from '${pkg}/${modulePath(o.apiVersion)}/${o.kind}'`)
      owners.push({ line: lines.length, object: o, kubernetes })
      // One line per object, so a diagnostic's line names its object.
      lines.push(`export const o${i}_${j}: T${i}_${j} = ${JSON.stringify(o)}`)
    })
  })
  const source = lines.join('\n')
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
    strict: true, noEmit: true, skipLibCheck: true, types: [],
  }
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, lang, ...rest) => {
    if (name === file) return ts.createSourceFile(name, source, lang)
    // The libraries' and models' declarations are parsed (and bound) once per process, not per call.
    let sf = parsedDeclarations.get(name)
    if (sf === undefined) {
      sf = getSourceFile(name, lang, ...rest)
      if (sf !== undefined) parsedDeclarations.set(name, sf)
    }
    return sf
  }
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => name === file || fileExists(name)
  const program = ts.createProgram([file], options, host)
  const sf = program.getSourceFile(file)!
  const out: string[] = []
  for (const d of [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]) {
    const line = d.start === undefined ? -1 : sf.getLineAndCharacterOfPosition(d.start).line
    const owner = owners.find((x) => x.line === line) ?? owners.find((x) => x.line === line + 1)
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n')
    const against = owner && CRD_SCHEMA_PACKAGES[owner.object.apiVersion] ? owner.kubernetes : `Kubernetes ${owner?.kubernetes}`
    out.push(owner ? `${label(owner.object)}: ${against}: ${message}` : `schema check: ${message}`)
  }
  return out
}
