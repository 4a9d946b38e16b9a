/**
 * Boot-time kernel network tuning for EKS AL2023 nodes, as launch template user data. EKS merges a
 * MIME multi-part document with its own nodeadm config, and runs the shell part before the kubelet
 * starts, so the gateway (host networking: the node's network namespace) listens with these
 * settings from its first connection.
 */

export interface NetworkTuning {
  /** Listen backlog: bursts of new client connections must not overflow it. */
  readonly somaxconn: number
  /** Packets queued per CPU between the NIC and the stack. */
  readonly netdevMaxBacklog: number
  /** Max socket buffer (bytes) for rmem/wmem; streaming responses and peers across regions need room. */
  readonly socketBufferMaxBytes: number
  /** busy_poll/busy_read in µs; 0 leaves busy polling off (it trades CPU for latency). */
  readonly busyPollMicros: number
}

export function gatewayTuning(busyPollMicros: number): NetworkTuning {
  return { somaxconn: 65535, netdevMaxBacklog: 250000, socketBufferMaxBytes: 64 * 1024 * 1024, busyPollMicros }
}

export function sysctls(t: NetworkTuning): Record<string, string> {
  return {
    'net.core.somaxconn': String(t.somaxconn),
    'net.ipv4.tcp_max_syn_backlog': String(t.somaxconn),
    'net.core.netdev_max_backlog': String(t.netdevMaxBacklog),
    'net.core.rmem_max': String(t.socketBufferMaxBytes),
    'net.core.wmem_max': String(t.socketBufferMaxBytes),
    'net.ipv4.tcp_rmem': `4096 262144 ${t.socketBufferMaxBytes}`,
    'net.ipv4.tcp_wmem': `4096 262144 ${t.socketBufferMaxBytes}`,
    // 3 = client and server: saves a round trip on repeat connections.
    'net.ipv4.tcp_fastopen': '3',
    'net.core.busy_poll': String(t.busyPollMicros),
    'net.core.busy_read': String(t.busyPollMicros),
    // Idle keep-alive connections to upstreams must not fall back to slow start.
    'net.ipv4.tcp_slow_start_after_idle': '0',
    'net.ipv4.tcp_notsent_lowat': '16384',
    'net.ipv4.ip_local_port_range': '1024 65535',
    'net.ipv4.tcp_tw_reuse': '1',
    'net.core.default_qdisc': 'fq',
  }
}

/**
 * Shell script: sysctls, then per ENA interface one IRQ per CPU (irqbalance off, so it cannot
 * undo the pinning), XPS so each CPU transmits on its own queue, and RPS spread over all CPUs
 * only when the NIC has fewer queues than CPUs.
 */
export function tuningScript(t: NetworkTuning): string {
  const conf = Object.entries(sysctls(t)).map(([k, v]) => `${k} = ${v}`).join('\n')
  return `#!/bin/bash
set -euo pipefail
cat > /etc/sysctl.d/90-velox-network.conf <<'SYSCTL'
${conf}
SYSCTL
sysctl --system >/dev/null

# cpumask N -> the kernel's comma-separated hex mask with only CPU N set (works past 32 CPUs).
cpumask() {
  local cpu=$1 words=$(( ($(nproc --all) + 31) / 32 )) out="" w
  for (( w = words - 1; w >= 0; w-- )); do
    if (( cpu / 32 == w )); then out+=$(printf '%08x' $(( 1 << (cpu % 32) ))); else out+=00000000; fi
    (( w > 0 )) && out+=,
  done
  echo "$out"
}
# allmask -> every CPU set.
allmask() {
  local n=$(nproc --all) words=$(( ($(nproc --all) + 31) / 32 )) out="" w bits
  for (( w = words - 1; w >= 0; w-- )); do
    bits=$(( n - w * 32 )); (( bits > 32 )) && bits=32
    out+=$(printf '%08x' $(( (1 << bits) - 1 )))
    (( w > 0 )) && out+=,
  done
  echo "$out"
}

systemctl disable --now irqbalance 2>/dev/null || true
ncpu=$(nproc --all)
for path in /sys/class/net/*; do
  dev=\${path##*/}
  [[ "$(readlink -f "$path/device/driver" 2>/dev/null)" == */ena ]] || continue
  i=0
  for irq in $(awk -v d="$dev" '$NF ~ "^"d"-Tx-Rx-" { sub(":", "", $1); print $1 }' /proc/interrupts); do
    echo $(( i % ncpu )) > "/proc/irq/$irq/smp_affinity_list" || true
    i=$(( i + 1 ))
  done
  nq=0
  for q in "$path"/queues/tx-*; do
    n=\${q##*-}
    cpumask $(( n % ncpu )) > "$q/xps_cpus" || true
    nq=$(( nq + 1 ))
  done
  for q in "$path"/queues/rx-*; do
    if (( nq < ncpu )); then allmask > "$q/rps_cpus" || true; echo 4096 > "$q/rps_flow_cnt" || true; fi
  done
done
if [[ -w /proc/sys/net/core/rps_sock_flow_entries ]]; then echo 32768 > /proc/sys/net/core/rps_sock_flow_entries; fi
`
}

const BOUNDARY = 'VELOX-BOUNDARY'

/** The MIME multi-part user data EKS accepts for AL2023 managed node groups, base64-encoded. */
export function nodeUserData(script: string): string {
  const doc = [
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${BOUNDARY}"`,
    '',
    `--${BOUNDARY}`,
    'Content-Type: text/x-shellscript; charset="us-ascii"',
    '',
    script,
    `--${BOUNDARY}--`,
    '',
  ].join('\n')
  return Buffer.from(doc, 'utf8').toString('base64')
}
