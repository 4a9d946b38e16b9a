/**
 * Cluster software installed by the program (metrics-server, AWS Load Balancer Controller,
 * Cluster Autoscaler): pinned charts, pod identity for the controllers, and the gateway's Service
 * handed to the controller with IP targets and a drain-aware deregistration, under mocks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseStackConfig } from '../../infra/lib/stack-config.ts'
import { readStackConfig } from '../../infra/tools/stack-files.ts'
import { clusterAutoscalerImageTag, clusterAutoscalerPolicy, loadBalancerControllerPolicy } from '../../infra/lib/cluster-addons.ts'
import { GATEWAY_PRESTOP_SECONDS, gatewayGracePeriodSeconds } from '../../infra/lib/manifests.ts'
import { ofType, one, runStack } from './helpers/run-stack.ts'

const STACK = 'prod-us-east-1'
const cfg = parseStackConfig(STACK, readStackConfig(STACK))
const run = runStack(STACK)

test('three charts, each pinned to an exact version from its official repository, in kube-system', async () => {
  const r = await run
  assert.equal(r.error, null)
  const releases = ofType(r, 'kubernetes:helm.sh/v3:Release').map((x) => x.inputs)
  assert.deepEqual(releases.map((x) => x['chart']).sort(), ['aws-load-balancer-controller', 'cluster-autoscaler', 'metrics-server'])
  for (const x of releases) {
    assert.match(x['version'], /^\d+\.\d+\.\d+$/, `${x['chart']} pinned`)
    assert.match(x['repositoryOpts'].repo, /^https:\/\//)
    assert.equal(x['namespace'], 'kube-system')
    assert.equal(x['atomic'], true, 'a failed install rolls back instead of leaving half a controller')
  }
  const ca = releases.find((x) => x['chart'] === 'cluster-autoscaler')!
  assert.equal(ca['values'].image.tag, clusterAutoscalerImageTag(cfg.kubernetesVersion))
  assert.ok(ca['values'].image.tag.startsWith(`v${cfg.kubernetesVersion}.`), 'autoscaler minor = cluster minor')
  assert.equal(ca['values'].autoDiscovery.clusterName, r.outputs['clusterName'])
  const lbc = releases.find((x) => x['chart'] === 'aws-load-balancer-controller')!
  assert.equal(lbc['values'].clusterName, r.outputs['clusterName'])
  assert.equal(lbc['values'].region, cfg.region)
  assert.ok(lbc['values'].vpcId)
  assert.throws(() => clusterAutoscalerImageTag('1.29'), /no Cluster Autoscaler release known for Kubernetes 1.29/)
})

test('controllers get their IAM roles through EKS Pod Identity, on the service accounts the charts create', async () => {
  const r = await run
  const releases = ofType(r, 'kubernetes:helm.sh/v3:Release').map((x) => x.inputs)
  const saOf = (chart: string) => {
    const v = releases.find((x) => x['chart'] === chart)!['values']
    return (v.serviceAccount ?? v.rbac.serviceAccount).name
  }
  const assoc = ofType(r, 'aws:eks/podIdentityAssociation:PodIdentityAssociation').map((a) => a.inputs)
  assert.deepEqual(assoc.map((a) => `${a['namespace']}/${a['serviceAccount']}`).sort(),
    [`kube-system/${saOf('aws-load-balancer-controller')}`, `kube-system/${saOf('cluster-autoscaler')}`].sort())
  for (const a of assoc) {
    assert.equal(a['clusterName'], r.outputs['clusterName'])
    // The ARN IAM computed for the role (the mocks model Pulumi's auto-generated name).
    const role = ofType(r, 'aws:iam/role:Role').find((x) => x.state['arn'] === a['roleArn'])!
    const trust = JSON.parse(role.inputs['assumeRolePolicy'])
    assert.deepEqual(trust.Statement[0].Principal, { Service: 'pods.eks.amazonaws.com' })
    assert.deepEqual(trust.Statement[0].Action, ['sts:AssumeRole', 'sts:TagSession'])
    assert.ok(ofType(r, 'aws:iam/rolePolicy:RolePolicy').some((p) => p.inputs['role'] === role.state['name']))
  }
})

test('IAM: the autoscaler changes only this cluster\'s groups; the controller deletes only what it tagged', () => {
  const ca = JSON.parse(clusterAutoscalerPolicy('velox-prod-us-east-1'))
  const writes = ca.Statement.find((s: any) => s.Action.includes('autoscaling:SetDesiredCapacity'))
  assert.deepEqual(writes.Condition, { StringEquals: { 'aws:ResourceTag/k8s.io/cluster-autoscaler/velox-prod-us-east-1': 'owned' } })
  assert.ok(!ca.Statement.some((s: any) => s !== writes && s.Action.includes('autoscaling:TerminateInstanceInAutoScalingGroup')))
  const lbc = JSON.parse(loadBalancerControllerPolicy())
  const deletes = lbc.Statement.filter((s: any) => [s.Action].flat().includes('ec2:DeleteSecurityGroup'))
  assert.equal(deletes.length, 1)
  assert.deepEqual(deletes[0].Condition, { Null: { 'aws:ResourceTag/elbv2.k8s.aws/cluster': 'false' } })
  assert.ok(lbc.Statement.some((s: any) => [s.Action].flat().includes('elasticloadbalancing:RegisterTargets')))
})

test('the gateway Service: controller-owned NLB, IP targets, /readyz health checks, deregistration covering the drain', async () => {
  const r = await run
  const svc = ofType(r, 'kubernetes:core/v1:Service').find((s) => s.inputs['spec'].type === 'LoadBalancer')!
  const a = svc.inputs['metadata'].annotations as Record<string, string>
  const p = 'service.beta.kubernetes.io/aws-load-balancer-'
  assert.equal(svc.inputs['spec'].loadBalancerClass, 'service.k8s.aws/nlb')
  assert.equal(a[`${p}type`], undefined, 'no in-tree annotation: the class alone selects the controller')
  assert.equal(a[`${p}nlb-target-type`], 'ip')
  assert.equal(a[`${p}healthcheck-path`], '/readyz')
  assert.equal(a[`${p}healthcheck-protocol`], 'http')
  assert.equal(a[`${p}ssl-cert`], cfg.certificateArn)
  const attrs = Object.fromEntries(a[`${p}target-group-attributes`]!.split(',').map((kv) => kv.split('=')))
  const delay = Number(attrs['deregistration_delay.timeout_seconds'])
  assert.equal(delay, GATEWAY_PRESTOP_SECONDS + cfg.gatewayDrainSeconds)
  assert.ok(delay < gatewayGracePeriodSeconds({ drainSeconds: cfg.gatewayDrainSeconds }), 'the NLB lets go before the kubelet kills the pod')
  assert.equal(attrs['deregistration_delay.connection_termination.enabled'], 'true')
  const ns = one(r, 'kubernetes:core/v1:Namespace').inputs['metadata']
  assert.equal(ns.labels['elbv2.k8s.aws/pod-readiness-gate-inject'], 'enabled', 'rollouts wait for NLB target health')
  assert.equal(ofType(r, 'pulumi:providers:kubernetes').length, 1, 'add-ons and workloads share one provider')
})
