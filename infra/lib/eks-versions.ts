/**
 * The EKS Kubernetes minor versions the platform deploys, with the day AWS ends their standard
 * support (14 months after EKS release; afterwards extended support costs extra per cluster hour,
 * and a cluster with `upgradePolicy.supportType: STANDARD` is upgraded by AWS at that date).
 * Source: the Amazon EKS user guide, "Understand the Kubernetes version lifecycle on EKS".
 * Pure data; extend it when AWS publishes a new version.
 */

export interface EksVersion {
  readonly version: string
  /** Released on EKS (ISO date). */
  readonly released: string
  /** Last day of standard support (ISO date). */
  readonly endOfStandardSupport: string
}

export const EKS_VERSIONS: readonly EksVersion[] = [
  { version: '1.33', released: '2025-05-28', endOfStandardSupport: '2026-07-29' },
  { version: '1.34', released: '2025-10-06', endOfStandardSupport: '2026-12-02' },
  { version: '1.35', released: '2026-01-28', endOfStandardSupport: '2027-03-27' },
]

/** The default cluster version: in standard support through the first quarter of 2027. */
export const DEFAULT_KUBERNETES_VERSION = '1.35'

export function eksVersion(version: string): EksVersion | undefined {
  return EKS_VERSIONS.find((v) => v.version === version)
}

/** Why `version` should not be deployed on `day` (ISO date), or null when it is in standard support. */
export function eksVersionProblem(version: string, day: string): string | null {
  const v = eksVersion(version)
  if (!v) return `unknown EKS version "${version}"; known: ${EKS_VERSIONS.map((k) => k.version).join(', ')}`
  if (day > v.endOfStandardSupport) return `EKS ${version} left standard support on ${v.endOfStandardSupport} (extended support is billed extra); use ${EKS_VERSIONS.filter((k) => k.endOfStandardSupport >= day).map((k) => k.version).join(' or ') || 'a newer version'}`
  return null
}
