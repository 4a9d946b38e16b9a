/**
 * nginx as the speed anchor: a plain reverse proxy in front of the same simulator, pinned to the
 * gateway's core, with what a well-configured nginx in front of an inference server has (upstream
 * keep-alive, HTTP/1.1 upstream, no response buffering so streams pass event by event, no request
 * buffering, no access log). One worker process, like the one gateway process it is compared with.
 * Ratios to it, measured side by side in one run, are what the budgets in DESIGN.md are written in.
 * When nginx is not installed (`apt-get install nginx-light`), scenarios run without it and say so.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { BenchContext } from './scenario.ts'
import { freePort, waitForReady, type Target } from './targets.ts'

const CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/bin/nginx']

/** The nginx binary, or null when none is installed. */
export function nginxBinary(): string | null {
  return CANDIDATES.find((p) => existsSync(p)) ?? null
}

export const NGINX_MISSING_NOTE = 'nginx is not installed (apt-get install nginx-light): the nginx anchor rows and ratio checks were skipped'

/** Starts nginx proxying to `upstreamUrl`; null when nginx is not installed. */
export async function startNginx(ctx: BenchContext, upstreamUrl: string, name = 'nginx'): Promise<Target | null> {
  const binary = nginxBinary()
  if (binary === null) return null
  const port = await freePort()
  const dir = join(ctx.workDir, name)
  mkdirSync(dir, { recursive: true })
  const upstream = new URL(upstreamUrl)
  const conf = `
daemon off;
master_process on;
worker_processes 1;
# Each proxied stream holds two connections (client and upstream): streams-at-scale opens 5,000.
worker_rlimit_nofile 65536;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 32768; }
http {
  access_log off;
  client_body_temp_path ${dir}/client-body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  upstream inference {
    server ${upstream.hostname}:${upstream.port};
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} reuseport;
    client_max_body_size 64m;
    location / {
      proxy_pass http://inference;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 600s;
      tcp_nodelay on;
    }
  }
}
`
  const confFile = join(dir, 'nginx.conf')
  writeFileSync(confFile, conf)
  const proc = ctx.processes.start({ name, command: binary, args: ['-p', dir, '-c', confFile, '-e', join(dir, 'error.log')], cpus: ctx.cores.gateway })
  const url = `http://127.0.0.1:${port}`
  await waitForReady(proc, `${url}/v1/models`)
  return { name, url, process: proc, metricsUrl: null, gcTrace: null }
}
