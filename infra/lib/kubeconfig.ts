/** A kubeconfig for an EKS cluster that authenticates with `aws eks get-token` (no static secret). */
export interface KubeconfigInputs {
  readonly clusterName: string
  readonly endpoint: string
  readonly certificateAuthority: string
  readonly region: string
}

export function renderKubeconfig(k: KubeconfigInputs): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: k.clusterName, cluster: { server: k.endpoint, 'certificate-authority-data': k.certificateAuthority } }],
    contexts: [{ name: k.clusterName, context: { cluster: k.clusterName, user: k.clusterName } }],
    'current-context': k.clusterName,
    users: [{
      name: k.clusterName,
      user: {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: 'aws',
          args: ['eks', 'get-token', '--cluster-name', k.clusterName, '--region', k.region, '--output', 'json'],
          interactiveMode: 'Never',
        },
      },
    }],
  })
}
