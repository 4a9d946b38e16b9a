/**
 * What the platform deploys for monitoring (velox:monitoring): the PrometheusRule is the rule file
 * promtool checks and unit-tests, the ServiceMonitor reaches every gateway's admin listener with
 * the admin token the gateway itself reads, the dashboard ships as a sidecar ConfigMap; objects
 * valid against the Kubernetes and Prometheus Operator CRD schemas, on the program under mocks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse, stringify } from 'yaml'
import { GatewayConfigSchema } from '../../gateway/src/config/schema.ts'
import { readObservabilityFiles } from '../../infra/components/monitoring.ts'
import { ADMIN_PORT, ADMIN_TOKEN_ENV } from '../../infra/lib/gateway-config.ts'
import { gatewayDeployment } from '../../infra/lib/manifests.ts'
import { ADMIN_SECRET_KEY, ADMIN_SECRET_NAME, adminService, adminTokenSecret, dashboardConfigMap, prometheusRule, ruleGroups, serviceMonitor } from '../../infra/lib/monitoring.ts'
import { parseStackConfig } from '../../infra/lib/stack-config.ts'
import { readStackConfig } from '../../infra/tools/stack-files.ts'
import { manifestsOf } from '../../infra/tools/render-manifests.ts'
import { checkResource } from '../../infra/policy/policies.ts'
import { schemaProblems, type K8sObject } from './helpers/k8s-schema.ts'
import { ofType, one, runStack } from './helpers/run-stack.ts'

const run = promisify(execFile)
const files = readObservabilityFiles()
const ON = 'velox:monitoring={"prometheusOperator":true,"selectorLabels":{"release":"kube-prometheus-stack"},"scrapeInterval":"15s"}'
const SIG = '4dabf18193072939515e22adb298388d'

test('the PrometheusRule carries rules.yml unchanged: promtool checks and unit-tests what is deployed', async () => {
  const rule = prometheusRule(files.rules, { selectorLabels: {} }) as { spec: { groups: unknown[] } }
  assert.deepEqual(rule.spec.groups, (parse(files.rules) as { groups: unknown[] }).groups)
  // The deployed groups, written back out as a rule file, pass the same promtool checks and unit tests.
  const dir = mkdtempSync(join(tmpdir(), 'velox-rules-'))
  writeFileSync(join(dir, 'rules.yml'), stringify({ groups: rule.spec.groups }))
  writeFileSync(join(dir, 'rules.test.yml'), readFileSync(join(import.meta.dirname, '../../infra/observability/rules.test.yml'), 'utf8'))
  const check = await run('promtool', ['check', 'rules', join(dir, 'rules.yml')])
  assert.match(check.stdout, /SUCCESS: \d+ rules found/)
  const unit = await run('promtool', ['test', 'rules', join(dir, 'rules.test.yml')])
  assert.match(unit.stdout + unit.stderr, /SUCCESS/)
  assert.throws(() => ruleGroups('groups: []\n'), /no rule groups/)
})

test('the ServiceMonitor scrapes the admin port by name, with the token from the Secret the gateway reads', () => {
  const sm = serviceMonitor({ selectorLabels: { release: 'kps' }, scrapeInterval: '15s' }) as any
  const svc = adminService() as any
  const secret = adminTokenSecret('t') as any
  const gateway = gatewayDeployment({ image: 'i', configHash: 'h', redisPassword: false, peerKey: false, nodeSelector: {}, cpu: '1', memory: '1Gi', drainSeconds: 30 }) as any
  const container = gateway.spec.template.spec.containers[0]
  const endpoint = sm.spec.endpoints[0]
  assert.equal(sm.metadata.labels.release, 'kps', 'the Prometheus selector labels')
  assert.equal(endpoint.interval, '15s')
  assert.equal(endpoint.path, '/metrics')
  // Port by name: the Service's port, and the container's (host) port, both the gateway's admin port.
  assert.equal(svc.spec.ports[0].name, endpoint.port)
  assert.equal(svc.spec.ports[0].port, ADMIN_PORT)
  assert.ok(container.ports.some((p: any) => p.name === endpoint.port && p.containerPort === ADMIN_PORT && p.hostPort === ADMIN_PORT))
  assert.equal(svc.spec.clusterIP, 'None', 'headless: never a load balancer')
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assert.equal(svc.metadata.labels[k], v, `the ServiceMonitor selects the admin Service (${k})`)
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(gateway.spec.template.metadata.labels[k], v, 'the admin Service selects the gateway pods')
  // One token: the Secret's key is what the gateway reads as ADMIN_TOKEN_ENV and what Prometheus presents.
  assert.deepEqual(endpoint.authorization, { type: 'Bearer', credentials: { name: ADMIN_SECRET_NAME, key: ADMIN_SECRET_KEY } })
  assert.equal(secret.metadata.name, ADMIN_SECRET_NAME)
  assert.ok(ADMIN_SECRET_KEY in secret.stringData)
  const env = container.env.find((e: any) => e.name === ADMIN_TOKEN_ENV)
  assert.deepEqual(env.valueFrom.secretKeyRef, { name: ADMIN_SECRET_NAME, key: ADMIN_SECRET_KEY })
})

test('the dashboard ConfigMap: the sidecar label, the dashboard JSON intact', () => {
  const cm = dashboardConfigMap(files.dashboard, { dashboardLabel: { key: 'grafana_dashboard', value: '1' } }) as any
  assert.equal(cm.metadata.labels.grafana_dashboard, '1')
  const [text] = Object.values(cm.data) as string[]
  assert.deepEqual(JSON.parse(text!), JSON.parse(files.dashboard))
  assert.throws(() => dashboardConfigMap('{}', { dashboardLabel: { key: 'k', value: 'v' } }), /no uid/)
})

test('stack config: defaults, and bad monitoring or semantic settings refused with their keys', () => {
  const raw = readStackConfig('dev-us-east-1')
  const c = parseStackConfig('dev-us-east-1', raw, '2026-06-01')
  assert.deepEqual(c.monitoring, { prometheusOperator: false, selectorLabels: {}, scrapeInterval: '30s', grafanaDashboard: true, dashboardLabel: { key: 'grafana_dashboard', value: '1' } })
  assert.equal(c.semanticCache.enabled, false)
  const on = parseStackConfig('dev-us-east-1', { ...raw, 'velox:monitoring': '{"prometheusOperator":true}' }, '2026-06-01')
  assert.equal(on.monitoring.prometheusOperator, true)
  assert.equal(on.monitoring.scrapeInterval, '30s', 'the rest keeps its defaults')
  assert.throws(() => parseStackConfig('dev-us-east-1', { ...raw, 'velox:monitoring': '{"scrapeInterval":"often"}' }, '2026-06-01'), /velox:monitoring\.scrapeInterval: a Prometheus duration/)
  assert.throws(() => parseStackConfig('dev-us-east-1', { ...raw, 'velox:semanticCache': '{"enabled":true,"instanceType":"g6.12xlarge"}' }, '2026-06-01'), /velox:semanticCache\.instanceType: "g6\.12xlarge" has 4 GPUs/)
  assert.throws(() => parseStackConfig('dev-us-east-1', { ...raw, 'velox:semanticCache': '{"enabled":true,"instanceType":"c7gn.large"}' }, '2026-06-01'), /velox:semanticCache\.instanceType: .*no GPU/)
})

test('the program with the Prometheus Operator on: rules, scrape, dashboard, admin listener; schema-valid and policy-clean', async () => {
  const r = await runStack('dev-us-east-1', ON)
  assert.equal(r.error, null)
  const rule = one(r, 'kubernetes:monitoring.coreos.com/v1:PrometheusRule')
  const sm = one(r, 'kubernetes:monitoring.coreos.com/v1:ServiceMonitor')
  assert.equal(rule.inputs['metadata'].labels.release, 'kube-prometheus-stack')
  assert.equal(sm.inputs['spec'].endpoints[0].interval, '15s')
  assert.equal(ofType(r, 'kubernetes:core/v1:ConfigMap').filter((c) => c.inputs['metadata'].name === 'velox-dashboard').length, 1)
  // The rendered gateway config opens the admin listener the ServiceMonitor scrapes, guarded by the token.
  const config = GatewayConfigSchema.parse(parse(one(r, 'kubernetes:core/v1:ConfigMap', 'gateway-config').inputs['data']['gateway.yaml']))
  assert.deepEqual(config.admin, { host: '0.0.0.0', port: ADMIN_PORT, tokenEnv: ADMIN_TOKEN_ENV })
  // The token: generated once by the random provider, stored as a secret, never in the config.
  const password = one(r, 'random:index/randomPassword:RandomPassword')
  assert.equal(password.inputs['length'], 48)
  const secret = ofType(r, 'kubernetes:core/v1:Secret').find((s) => s.inputs['metadata'].name === ADMIN_SECRET_NAME)!
  assert.ok(JSON.stringify(secret.inputs['stringData']).includes(SIG), 'the token is a secret value in the state')
  assert.ok(!one(r, 'kubernetes:core/v1:ConfigMap', 'gateway-config').inputs['data']['gateway.yaml'].includes(String(password.state['result'])))
  // Rotating the token rolls the pods (they read it at start): its digest, not secret, is on the pod template.
  const annotations = one(r, 'kubernetes:apps/v1:Deployment', 'apps-gateway').inputs['spec'].template.metadata.annotations
  assert.equal(annotations['velox.dev/admin-token-digest'], createHash('sha256').update(String(password.state['result'])).digest('hex').slice(0, 16))
  const objects = (manifestsOf(r.resources) as unknown as K8sObject[]).filter((o) => o.apiVersion !== 'helm.sh/v3')
  assert.ok(objects.some((o) => o.kind === 'ServiceMonitor') && objects.some((o) => o.kind === 'PrometheusRule'))
  assert.deepEqual(await schemaProblems(objects), [])
  for (const res of r.resources) assert.deepEqual(checkResource({ type: res.type, props: res.inputs, urn: `urn:pulumi:dev-us-east-1::velox::${res.type}::${res.name}`, name: res.name }), [], res.name)
})

test('the program by default: no Prometheus Operator objects (no CRDs assumed), the dashboard ConfigMap still', async () => {
  const r = await runStack('dev-us-east-1')
  assert.equal(r.error, null)
  assert.equal(r.resources.filter((x) => x.type.startsWith('kubernetes:monitoring.coreos.com/')).length, 0)
  const cm = ofType(r, 'kubernetes:core/v1:ConfigMap').find((c) => c.inputs['metadata'].name === 'velox-dashboard')
  assert.equal(JSON.parse(Object.values(cm!.inputs['data'])[0] as string).uid, 'velox-gateway')
  const off = await runStack('dev-us-east-1', 'velox:monitoring={"grafanaDashboard":false}')
  assert.equal(ofType(off, 'kubernetes:core/v1:ConfigMap').filter((c) => c.inputs['metadata'].name === 'velox-dashboard').length, 0)
})
