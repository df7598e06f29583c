import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../src/paths.js';

export const SITE_TEMPLATE = join(projectRoot(), 'config/nginx/kvm-ferry.conf');

/** The same substitution scripts/install-site.sh does: @KEY@ → value, and nothing may be left over. */
export function renderSite(values: Record<string, string>): string {
  const text = readFileSync(SITE_TEMPLATE, 'utf8').replace(/@([A-Z_]+)@/g, (m, k: string) => values[k] ?? m);
  const body = text.replace(/^\s*#.*$/gm, '');
  const left = body.match(/@[A-Z_]+@/g);
  if (left) throw new Error(`nginx site template has unfilled values: ${left.join(', ')}`);
  return text;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1', () => (c.destroy(), r(true)));
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nginx did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export interface TestNginx {
  port: number;
  url: string;
  dir: string;
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * A real nginx with its own prefix, pid and logs (never the system's), serving the
 * shipped site template on a loopback port. Users: { name: password } → bcrypt htpasswd.
 */
export async function startNginx(opts: {
  upstreamPort: number;
  /** The manager's dataDir: its proxy.key goes into the include nginx adds, as install-site.sh does. */
  dataDir: string;
  consolePort?: number;
  users: Record<string, string>;
  bcryptCost?: number;
  /** Extra text after the listen address, e.g. " ssl". */
  listenSuffix?: string;
  /** Applies what the template's comments tell an admin to add (the TLS lines). */
  edit?: (site: string) => string;
  /** Prefix directory (created by the caller, e.g. holding certificates); a fresh one by default. */
  dir?: string;
}): Promise<TestNginx> {
  if (!existsSync('/usr/sbin/nginx')) throw new Error('nginx is not installed: run scripts/install-pkgs.sh');
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'kvm-ferry-nginx-'));
  for (const d of ['logs', 'tmp']) mkdirSync(join(dir, d));
  const htpasswd = join(dir, 'htpasswd');
  for (const [user, pass] of Object.entries(opts.users)) {
    execFileSync('htpasswd', ['-B', '-C', String(opts.bcryptCost ?? 5), '-i', ...(existsSync(htpasswd) ? [] : ['-c']), htpasswd, user], { input: pass, stdio: ['pipe', 'ignore', 'pipe'] });
  }
  const port = await freeLoopbackPort();
  const proxyConf = join(dir, 'proxy-secret.conf');
  writeFileSync(proxyConf, `proxy_set_header X-Kvm-Ferry-Proxy "${readFileSync(join(opts.dataDir, 'proxy.key'), 'utf8').trim()}";\n`, { mode: 0o600 });
  const rendered = renderSite({
    PROXY_SECRET_CONF: proxyConf,
    LISTEN: `127.0.0.1:${port}${opts.listenSuffix ?? ''}`,
    SERVER_NAME: '127.0.0.1 localhost',
    UPSTREAM: `127.0.0.1:${opts.upstreamPort}`,
    CONSOLE_UPSTREAM: `127.0.0.1:${opts.consolePort ?? opts.upstreamPort}`,
    HTPASSWD: htpasswd,
  });
  const site = opts.edit ? opts.edit(rendered) : rendered;
  writeFileSync(join(dir, 'site.conf'), site);
  const t = (n: string) => join(dir, 'tmp', n);
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      // As root, workers would drop to "nobody", who cannot read a 0700 temp dir.
      ...(process.getuid?.() === 0 ? ['user root root;'] : []),
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'logs/error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      `  access_log ${join(dir, 'logs/access.log')};`,
      `  client_body_temp_path ${t('body')}; proxy_temp_path ${t('proxy')}; fastcgi_temp_path ${t('fcgi')};`,
      `  uwsgi_temp_path ${t('uwsgi')}; scgi_temp_path ${t('scgi')};`,
      `  include ${join(dir, 'site.conf')};`,
      '}',
    ].join('\n'),
  );
  const child = spawn('/usr/sbin/nginx', ['-p', dir, '-e', join(dir, 'logs/error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitForPort(port, child, join(dir, 'logs/error.log'));
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}\n${stderr}`);
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    errorLog: () => readFileSync(join(dir, 'logs/error.log'), 'utf8'),
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGQUIT');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
