/**
 * The operating artefacts the platform ships beside the gateway, as plain
 * Kubernetes objects: the admin listener's token Secret and headless Service, the Prometheus
 * Operator's ServiceMonitor and PrometheusRule, and the Grafana dashboard ConfigMap. Pure: the
 * rule and dashboard files (infra/observability/) are read by the Monitoring component and passed in as text.
 */
import type * as pulumi from '@pulumi/pulumi'
import type { types } from '@pulumi/kubernetes'
import { parse } from 'yaml'

/** The admin listener (`/metrics`, profiles, operator actions): on the node, never behind the load balancer. */
export const ADMIN_PORT = 9901
/** Environment variable holding the admin token (from the gateway-admin Secret). */
export const ADMIN_TOKEN_ENV = 'VELOX_ADMIN_TOKEN'
export const MONITORING_NAMESPACE = 'velox'
/** The Secret the gateway reads its admin token from and Prometheus presents it from (key `token`). */
export const ADMIN_SECRET_NAME = 'gateway-admin'
export const ADMIN_SECRET_KEY = 'token'
/** Headless Service listing every gateway pod's admin endpoint: what the ServiceMonitor selects. */
export const ADMIN_SERVICE_NAME = 'gateway-admin'
export const ADMIN_PORT_NAME = 'admin'
export const DASHBOARD_CONFIGMAP_NAME = 'velox-dashboard'
export const DASHBOARD_FILE = 'velox-gateway.json'
export const RULES_NAME = 'velox-gateway'

const gatewayLabels = { 'app.kubernetes.io/name': 'gateway', 'app.kubernetes.io/part-of': 'velox' }
const adminLabels = { ...gatewayLabels, 'app.kubernetes.io/component': 'admin' }

/** The monitoring part of stack config (velox:monitoring). */
export interface MonitoringSpec {
  readonly prometheusOperator: boolean
  readonly selectorLabels: Readonly<Record<string, string>>
  readonly scrapeInterval: string
  readonly grafanaDashboard: boolean
  readonly dashboardLabel: { readonly key: string; readonly value: string }
}

export interface ObservabilityFiles {
  /** infra/observability/rules.yml: Prometheus rule groups (checked by promtool in npm test). */
  readonly rules: string
  /** infra/observability/dashboard.json: the Grafana dashboard. */
  readonly dashboard: string
}

export function adminTokenSecret(token: pulumi.Input<string>): types.input.core.v1.Secret {
  return { metadata: { name: ADMIN_SECRET_NAME, namespace: MONITORING_NAMESPACE, labels: adminLabels }, type: 'Opaque', stringData: { [ADMIN_SECRET_KEY]: token } }
}

/**
 * Headless, never a LoadBalancer: its endpoints are the gateway pods' (host) addresses on the
 * admin port, for Prometheus inside the cluster only.
 */
export function adminService(): types.input.core.v1.Service {
  return {
    metadata: { name: ADMIN_SERVICE_NAME, namespace: MONITORING_NAMESPACE, labels: adminLabels },
    spec: { clusterIP: 'None', selector: gatewayLabels, ports: [{ name: ADMIN_PORT_NAME, port: ADMIN_PORT, targetPort: ADMIN_PORT, protocol: 'TCP' }] },
  }
}

/** Scrapes /metrics on every gateway pod's admin listener, presenting the admin token from its Secret. */
export function serviceMonitor(s: Pick<MonitoringSpec, 'selectorLabels' | 'scrapeInterval'>): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: { name: 'gateway', namespace: MONITORING_NAMESPACE, labels: { ...gatewayLabels, ...s.selectorLabels } },
    spec: {
      selector: { matchLabels: adminLabels },
      namespaceSelector: { matchNames: [MONITORING_NAMESPACE] },
      // `job` is what the dashboard's job variable and the rules group by: keep it stable.
      jobLabel: 'app.kubernetes.io/part-of',
      endpoints: [{
        port: ADMIN_PORT_NAME,
        path: '/metrics',
        scheme: 'http',
        interval: s.scrapeInterval,
        scrapeTimeout: '10s',
        authorization: { type: 'Bearer', credentials: { name: ADMIN_SECRET_NAME, key: ADMIN_SECRET_KEY } },
        // Host networking: the pod IP is the node's; name the series by pod and node instead.
        relabelings: [
          { sourceLabels: ['__meta_kubernetes_pod_name'], targetLabel: 'pod' },
          { sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node' },
        ],
      }],
    },
  }
}

interface RuleGroup { readonly name: string; readonly interval?: string; readonly rules: readonly Record<string, unknown>[] }

/** The groups of a Prometheus rules file; throws on a file that has none. */
export function ruleGroups(rulesYaml: string): RuleGroup[] {
  const doc = parse(rulesYaml) as { groups?: RuleGroup[] } | null
  if (!doc || !Array.isArray(doc.groups) || doc.groups.length === 0) throw new Error('rules file has no rule groups')
  return doc.groups
}

/** rules.yml as the operator's PrometheusRule: the same groups, so promtool's checks cover what is deployed. */
export function prometheusRule(rulesYaml: string, s: Pick<MonitoringSpec, 'selectorLabels'>): Record<string, unknown> {
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: RULES_NAME, namespace: MONITORING_NAMESPACE, labels: { ...gatewayLabels, ...s.selectorLabels } },
    spec: { groups: ruleGroups(rulesYaml) },
  }
}

/** The dashboard JSON in a ConfigMap carrying the label Grafana's sidecar loads dashboards from. */
export function dashboardConfigMap(dashboardJson: string, s: Pick<MonitoringSpec, 'dashboardLabel'>): types.input.core.v1.ConfigMap {
  const dashboard = JSON.parse(dashboardJson) as { uid?: unknown }
  if (typeof dashboard.uid !== 'string') throw new Error('dashboard JSON has no uid')
  return {
    metadata: {
      name: DASHBOARD_CONFIGMAP_NAME,
      namespace: MONITORING_NAMESPACE,
      labels: { ...gatewayLabels, [s.dashboardLabel.key]: s.dashboardLabel.value },
      // kube-prometheus-stack's sidecar files dashboards into the folder this annotation names.
      annotations: { grafana_folder: 'Velox' },
    },
    // Compact: a ConfigMap holds at most 1 MiB, and Grafana reads either form.
    data: { [DASHBOARD_FILE]: JSON.stringify(dashboard) },
  }
}
