import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { makeFixture } from '../helpers/fixture.js';
import { parseConfig } from '../../src/config.js';
import { compose, type Composed } from '../../src/compose.js';
import { createApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';

let server: Server | null = null;
let deps: Composed | null = null;
afterEach(async () => {
  if (server) await new Promise((r) => server!.close(r));
  await deps?.close();
  server = null;
  deps = null;
});

/** The real app with a debug-level logger whose every line the test keeps. */
async function appWithLog(f: ReturnType<typeof makeFixture>, extra: Record<string, unknown> = {}) {
  const lines: string[] = [];
  const config = parseConfig({ nodeName: 'alpha', libvirtUri: f.uri, dataDir: f.dataDir, imageDir: f.imageDir, isoDir: f.isoDir, vmNetwork: 'none', serialLogDir: 'none', ...extra });
  deps = compose(config, createLogger({ level: 'debug', write: (l) => lines.push(l) }));
  const s = createApp(deps).listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  server = s;
  const secret = readFileSync(join(f.dataDir, 'proxy.key'), 'utf8').trim();
  return { port: (s.address() as AddressInfo).port, lines, secret };
}

/** One HTTP request from a chosen local address (127.0.0.2 is loopback-routed but not the proxy's 127.0.0.1). */
function from(localAddress: string, port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, localAddress, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const BETA_PEER = { name: 'beta', sshHost: '127.0.0.1', sshKeyFile: '/nonexistent/key', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', dataAddress: '127.0.0.1' };

describe('who a request is from', () => {
  it('believes X-Remote-User and X-Forwarded-Host only with the secret nginx adds', async () => {
    const f = makeFixture([{ name: 'kfdp-a', state: 'shut-off' }, { name: 'kfdp-b', state: 'shut-off' }, { name: 'kfdp-c', state: 'shut-off' }]);
    const { port, secret } = await appWithLog(f);
    expect(statSync(join(f.dataDir, 'proxy.key')).mode & 0o777).toBe(0o600);
    const proxied = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/start?wait=5', { 'x-remote-user': 'admin', 'x-kvm-ferry-proxy': secret });
    // Any local process reaches the port from 127.0.0.1 too: without the secret its word counts for nothing.
    const local = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-b/start?wait=5', { 'x-remote-user': 'admin' });
    const guessed = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-c/start?wait=5', { 'x-remote-user': 'admin', 'x-kvm-ferry-proxy': secret.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')) });
    expect(JSON.parse(proxied.text).job.user).toBe('admin');
    expect(JSON.parse(local.text).job.user).toBeNull();
    expect(JSON.parse(guessed.text).job.user).toBeNull();
    // A forged X-Forwarded-Host cannot make a foreign Origin look same-site unless nginx sent it.
    const forged = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/poweroff', { origin: 'https://evil.example', 'x-forwarded-host': 'evil.example' });
    expect(forged.status).toBe(403);
    const viaNginx = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/poweroff?wait=5', { origin: 'https://kvm.example', 'x-forwarded-host': 'kvm.example', host: 'kvm.example', 'x-kvm-ferry-proxy': secret });
    expect(viaNginx.status, viaNginx.text).toBe(200);
  });

  it('answers only to loopback, its listen address and allowedHosts (no DNS rebinding), and a refused Host changes nothing', async () => {
    const f = makeFixture([{ name: 'kfdp-a' }]);
    const { port } = await appWithLog(f, { allowedHosts: ['kvm.office.example'] });
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'kvm.office.example', `KVM.office.example:${port}`]) {
      expect((await from('127.0.0.1', port, 'GET', '/api/nodes', { host })).status, host).toBe(200);
    }
    const before = deps!.jobsRepo.recent(10).length;
    for (const host of [`rebind.evil.example:${port}`, 'kvm.office.example.evil.example', `127.0.0.1.evil.example:${port}`]) {
      const r = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/poweroff?wait=5', { host });
      expect(r.status, host).toBe(421);
      expect(JSON.parse(r.text).error.message).toMatch(/^Refused a request for host ".*"; kvm-ferry answers only to loopback/);
      const page = await from('127.0.0.1', port, 'GET', '/', { host });
      expect(page.status).toBe(421);
    }
    expect(deps!.jobsRepo.recent(10).length).toBe(before);
    expect(JSON.parse((await from('127.0.0.1', port, 'GET', '/api/nodes/alpha/vms/kfdp-a', {})).text).state).toBe('running');
  });

  it("labels a peer's forwarded request with that peer, and only for a configured peer", async () => {
    const f = makeFixture([{ name: 'kfdp-a', state: 'shut-off' }, { name: 'kfdp-b', state: 'shut-off' }, { name: 'kfdp-c', state: 'shut-off' }]);
    const { port } = await appWithLog(f, { peers: [BETA_PEER] });
    const user = async (vm: string, headers: Record<string, string>) => JSON.parse((await from('127.0.0.1', port, 'POST', `/api/nodes/alpha/vms/${vm}/start?wait=5`, headers)).text).job.user;
    expect(await user('kfdp-a', { 'x-kvm-ferry-via': 'beta', 'x-remote-user': 'olga' })).toBe('peer:beta/olga');
    expect(await user('kfdp-b', { 'x-kvm-ferry-via': 'gamma', 'x-remote-user': 'olga' })).toBeNull();
    expect(await user('kfdp-c', { 'x-kvm-ferry-via': 'beta' })).toBe('peer:beta');
  });
});

describe('logs', () => {
  it('never contain credentials, form tokens or the token secret, even at debug level', async () => {
    const f = makeFixture([{ name: 'kfdp-a' }]);
    const { port, lines, secret: proxySecret } = await appWithLog(f);
    const nginx = { 'x-remote-user': 'admin', 'x-kvm-ferry-proxy': proxySecret };
    const creds = Buffer.from('admin:hunter2-secret').toString('base64');
    const page = await from('127.0.0.1', port, 'GET', '/', { authorization: `Basic ${creds}`, ...nginx });
    const token = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    await from('127.0.0.1', port, 'POST', '/nodes/alpha/vms/kfdp-a/poweroff', { authorization: `Basic ${creds}`, ...nginx, 'content-type': 'application/x-www-form-urlencoded' }, `_csrf=${token}`);
    await from('127.0.0.1', port, 'POST', '/nodes/alpha/vms/kfdp-a/start', { authorization: `Basic ${creds}`, 'content-type': 'application/x-www-form-urlencoded' }, `_csrf=${token}x`);
    await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms', { authorization: `Basic ${creds}`, 'content-type': 'application/json' }, '{"name":');
    await deps!.jobs.drain();
    const log = lines.join('\n');
    expect(lines.length).toBeGreaterThan(0);
    const secret = readFileSync(join(f.dataDir, 'csrf.key'));
    for (const s of [creds, 'hunter2', token, proxySecret, secret.toString('base64'), secret.toString('hex'), 'authorization', 'Authorization']) {
      expect(log, s).not.toContain(s);
    }
  });
});
