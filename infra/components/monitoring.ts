import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as k8s from '@pulumi/kubernetes'
import * as pulumi from '@pulumi/pulumi'
import { dashboardConfigMap, prometheusRule, serviceMonitor, type MonitoringSpec, type ObservabilityFiles } from '../lib/monitoring.ts'

export interface MonitoringArgs {
  /** The cluster's Kubernetes provider (ClusterAddons builds it). */
  readonly provider: k8s.Provider
  /** velox:monitoring. */
  readonly spec: MonitoringSpec
  /** The rules and dashboard; default: the files in infra/observability/ (what npm test checks with promtool). */
  readonly files?: ObservabilityFiles
}

/** Reads infra/observability/rules.yml and dashboard.json. */
export function readObservabilityFiles(dir = join(import.meta.dirname, '..', 'observability')): ObservabilityFiles {
  return { rules: readFileSync(join(dir, 'rules.yml'), 'utf8'), dashboard: readFileSync(join(dir, 'dashboard.json'), 'utf8') }
}

/**
 * The gateway's operating artefacts in the cluster's monitoring stack: the alert and recording
 * rules (PrometheusRule) and the scrape of every gateway's admin listener with its token
 * (ServiceMonitor), when the Prometheus Operator runs there; the Grafana dashboard as a ConfigMap.
 * The Workloads component owns what they point at (the gateway-admin Secret and Service).
 */
export class Monitoring extends pulumi.ComponentResource {
  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super('velox:k8s:Monitoring', name, {}, opts)
    const o = { parent: this, provider: args.provider }
    const files = args.files ?? readObservabilityFiles()
    if (args.spec.prometheusOperator) {
      new k8s.apiextensions.CustomResource(`${name}-rules`, prometheusRule(files.rules, args.spec) as k8s.apiextensions.CustomResourceArgs, o)
      new k8s.apiextensions.CustomResource(`${name}-scrape`, serviceMonitor(args.spec) as k8s.apiextensions.CustomResourceArgs, o)
    }
    if (args.spec.grafanaDashboard) new k8s.core.v1.ConfigMap(`${name}-dashboard`, dashboardConfigMap(files.dashboard, args.spec), o)
    this.registerOutputs({})
  }
}
