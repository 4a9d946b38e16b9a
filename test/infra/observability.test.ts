/**
 * The shipped operating artefacts (infra/observability/): alert and recording rules checked and
 * unit-tested with promtool, the dashboard's queries parsed by promtool, every metric they name
 * exposed by the gateway, and a real Prometheus scraping a running gateway's admin listener and
 * evaluating a recording rule.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { buildAdminServer } from '../../gateway/src/admin/server.ts'
import { metricsText } from '../../gateway/src/server.ts'
import { startSimulator } from '../../gateway/src/simulator/server.ts'
import { createLogger } from '../../gateway/src/telemetry/logger.ts'
import { GatewayMetrics } from '../../gateway/src/telemetry/metrics.ts'
import { chatBody, post, startGateway } from '../helpers/gateway.ts'
import { freePort } from '../gateway/cache/helpers.ts'
import { eventually } from '../helpers/eventually.ts'

const run = promisify(execFile)
const DIR = new URL('../../infra/observability/', import.meta.url).pathname
const RULES = join(DIR, 'rules.yml')
const dashboard = JSON.parse(readFileSync(join(DIR, 'dashboard.json'), 'utf8')) as {
  uid: string
  panels: Array<{ id: number; type: string; title: string; targets?: Array<{ expr: string }> }>
}
const rules = parseYaml(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; interval?: string; rules: Array<{ record?: string; alert?: string; expr: string }> }> }

const children = new Set<ChildProcess>()
after(() => {
  for (const c of children) c.kill('SIGKILL')
})

test('promtool accepts the rules and their unit tests pass', async () => {
  const check = await run('promtool', ['check', 'rules', RULES])
  assert.match(check.stdout, /SUCCESS: \d+ rules found/)
  const unit = await run('promtool', ['test', 'rules', join(DIR, 'rules.test.yml')])
  assert.match(unit.stdout, /SUCCESS/)
})

test('the alerts the platform relies on are there', () => {
  const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean)
  for (const a of ['VeloxHighErrorRate', 'VeloxAddedLatencyBudgetFastBurn', 'VeloxAddedLatencyBudgetSlowBurn', 'VeloxUpstreamMemberEjected', 'VeloxRedisErrors', 'VeloxConfigReloadRejected']) {
    assert.ok(alerts.includes(a), `${a} missing`)
  }
})

const dashboardExprs = (): string[] =>
  dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$job', '.*')))

test('the dashboard: unique panel ids, and every query parses (checked by promtool as recording rules)', async () => {
  const ids = dashboard.panels.map((p) => p.id)
  assert.equal(new Set(ids).size, ids.length)
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join('\n')
  for (const topic of ['added', 'first token', '5xx', 'cache', 'healthy', 'outstanding']) assert.match(titles, new RegExp(topic))
  const exprs = dashboardExprs()
  assert.ok(exprs.length >= 15)
  const file = join(mkdtempSync(join(tmpdir(), 'velox-dash-')), 'dashboard-queries.yml')
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:q${i}`, expr })) }] }))
  const check = await run('promtool', ['check', 'rules', file])
  assert.match(check.stdout, new RegExp(`SUCCESS: ${exprs.length} rules found`))
})

test('every metric the rules and the dashboard name is one the gateway exposes', async () => {
  const sim = await startSimulator()
  const gw = await startGateway({ upstreams: [{ name: 'sim', url: sim.url, models: ['*'] }] })
  try {
    const exposed = new Set<string>()
    const texts = [await (await fetch(`${gw.url}/metrics`)).text(), await new GatewayMetrics({ defaultMetrics: true }).registry.metrics()]
    for (const t of texts) for (const m of t.matchAll(/^# TYPE (\S+) (\S+)/gm)) exposed.add(m[1]!)
    const named = new Set<string>()
    for (const expr of [...dashboardExprs(), ...rules.groups.flatMap((g) => g.rules.map((r) => r.expr))]) {
      for (const m of expr.matchAll(/\b((?:velox|gen_ai|process|nodejs)_[a-z0-9_]+)\b/g)) named.add(m[1]!.replace(/_(bucket|sum|count)$/, ''))
    }
    const labelNames = new Set(['gen_ai_request_model', 'gen_ai_operation_name'])
    const missing = [...named].filter((n) => !exposed.has(n) && !labelNames.has(n))
    assert.deepEqual(missing, [])
    assert.ok(named.has('gen_ai_server_time_to_first_token_seconds'))
  } finally {
    await gw.close()
    await sim.close()
  }
})

test('a real Prometheus scrapes a running gateway (admin listener, with its token) and evaluates a recording rule', async () => {
  const sim = await startSimulator()
  const deadPort = await freePort()
  const gw = await startGateway({
    upstreams: [
      { name: 'sim', url: sim.url, models: ['velox-sim-1'] },
      { name: 'dead', url: `http://127.0.0.1:${deadPort}`, models: ['broken-model'], pool: { warm: 0 } },
    ],
    routing: { health: { intervalMs: 0 }, retry: { maxAttempts: 1 } },
    cache: { enabled: false },
    admin: { port: 0 },
  })
  const admin = buildAdminServer(gw.app.velox, { token: 'scrape-token', reload: null, metricsText: () => metricsText(gw.app.velox.metrics), logger: createLogger('silent') })
  await admin.listen({ host: '127.0.0.1', port: 0 })
  const adminPort = (admin.server.address() as AddressInfo).port
  const dir = mkdtempSync(join(tmpdir(), 'velox-prom-'))
  // The shipped rules, evaluated every 250 ms instead of every 30 s so the test is quick.
  writeFileSync(join(dir, 'rules.yml'), readFileSync(RULES, 'utf8').replace(/interval: 30s/g, 'interval: 250ms'))
  writeFileSync(
    join(dir, 'prometheus.yml'),
    JSON.stringify({
      global: { scrape_interval: '250ms', scrape_timeout: '200ms', evaluation_interval: '250ms' },
      rule_files: [join(dir, 'rules.yml')],
      scrape_configs: [{ job_name: 'velox', authorization: { credentials: 'scrape-token' }, static_configs: [{ targets: [`127.0.0.1:${adminPort}`] }] }],
    }),
  )
  const promPort = await freePort()
  const prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'ignore', 'pipe'] })
  children.add(prom)
  let promLog = ''
  prom.stderr!.on('data', (c: Buffer) => (promLog += c))
  let stop = false
  // Steady traffic, one 502 in four, while Prometheus scrapes.
  const traffic = (async () => {
    for (let i = 0; !stop; i++) {
      const res = await post(`${gw.url}/v1/chat/completions`, i % 4 === 3 ? chatBody({ model: 'broken-model' }) : chatBody())
      await res.arrayBuffer()
      // About 100 requests a second: steady traffic, not a load test beside Prometheus.
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  const query = async (q: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> => {
    const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`).catch(() => null)
    if (res === null || res.status !== 200) return []
    return ((await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data.result
  }
  try {
    const ratio = await eventually(async () => {
      const r = await query('velox:request_errors:ratio_rate5m')
      const value = r.length > 0 ? Number(r[0]!.value[1]) : NaN
      return Number.isFinite(value) && value > 0 ? value : null
    }, { what: 'a recorded sample', timeoutMs: 60_000, intervalMs: 200 }).catch((err: Error) => assert.fail(`${err.message}; prometheus log:\n${promLog.slice(-2000)}`))
    assert.ok(ratio > 0.1 && ratio < 0.5, `5xx ratio ${ratio}, sent one in four`)
    // A scrape cut by its 200 ms timeout on a busy machine reads as down, and marks the series
    // stale until the next one: an instant query right then sees nothing. Either comes back.
    await eventually(async () => (await query('up{job="velox"}'))[0]?.value[1] === '1', { what: 'up 1 for the gateway', timeoutMs: 30_000, intervalMs: 200 })
    const members = await eventually(async () => {
      const m = (await query('velox_upstream_member_healthy')).map((x) => x.metric.upstream!).sort()
      return m.length >= 2 ? m : null
    }, { what: 'both members scraped', timeoutMs: 30_000, intervalMs: 200 })
    assert.deepEqual(members, ['dead', 'sim'])
  } finally {
    stop = true
    await traffic
    prom.kill('SIGTERM')
    await new Promise((r) => prom.once('exit', r))
    children.delete(prom)
    await admin.close()
    await gw.close()
    await sim.close()
  }
})
