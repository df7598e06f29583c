import { createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoopbackSshd, type LoopbackSshd } from '../helpers/loopback-sshd.js';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * The page drawn from the inventory cache: "alpha" knows "beta" (a real manager behind a
 * real loopback sshd), "ghost" (nothing listens: its manager is down) and "tarpit" (a TCP
 * server that accepts and never answers, like a frozen host). Background refreshes are
 * slow (60 s) so every refresh a test sees is one it caused.
 */
let sshd: LoopbackSshd;
let alpha: TestApp;
let beta: TestApp;
let tarpit: Server;
let tarpitPort: number;
const held: Socket[] = [];

const peer = (name: string, managerPort: number, sshPort = sshd.port) => ({
  name, sshHost: '127.0.0.1', sshPort, sshUser: 'root', sshKeyFile: sshd.clientKey,
  hostKey: sshd.hostKey, dataAddress: '127.0.0.1', managerHost: '127.0.0.1', managerPort,
});

beforeAll(async () => {
  sshd = await startLoopbackSshd();
  tarpit = createServer((s) => {
    held.push(s);
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => tarpit.listen(0, '127.0.0.1', r));
  tarpitPort = (tarpit.address() as { port: number }).port;
  beta = await startTestApp(makeFixture([{ name: 'web-b', state: 'shut-off', disks: [{ path: '/var/lib/libvirt/images/web-b.qcow2' }] }]), { nodeName: 'beta', inventoryRefreshSec: 60 });
  alpha = await startTestApp(makeFixture([{ name: 'web-a', state: 'shut-off', disks: [{ path: '/var/lib/libvirt/images/web-a.qcow2' }] }]), {
    nodeName: 'alpha',
    inventoryRefreshSec: 60,
    libvirtTimeoutSec: 2,
    peers: [peer('beta', Number(new URL(beta.url).port)), peer('ghost', 1), peer('tarpit', 1, tarpitPort)],
  });
}, 60_000);

afterAll(async () => {
  await alpha?.close();
  await beta?.close();
  for (const s of held) s.destroy();
  await new Promise((r) => tarpit?.close(r));
  sshd?.stop();
});

const section = (html: string, node: string) => {
  const start = html.indexOf(`data-node="${node}"`);
  const end = html.indexOf('</section>', start);
  return start < 0 ? '' : html.slice(start, end);
};

describe('the inventory cache behind the page', () => {
  it('one slow peer never delays another: beta and this node answer while tarpit is still silent', async () => {
    // The first page waits at most 3 s for the first round; tarpit takes its whole timeout (7 s).
    const t0 = Date.now();
    const page = await api(alpha, 'GET', '/');
    expect(Date.now() - t0).toBeLessThan(6_500);
    expect(section(page.text, 'alpha')).toMatch(/data-status="up"/);
    expect(section(page.text, 'beta')).toMatch(/data-status="up"/);
    expect(section(page.text, 'beta')).toContain('data-vm="web-b"');
    expect(section(page.text, 'beta')).toMatch(/as of \d+ s ago/);
    expect(alpha.deps.inventory.cache.view('tarpit')?.state).toBe('never');
    expect(section(page.text, 'tarpit')).toMatch(/data-status="never"/);
    expect(section(page.text, 'tarpit')).toContain('not reached yet');
  });

  it('shows a peer whose manager does not answer as inactive, with the reason', async () => {
    const page = await api(alpha, 'GET', '/');
    const ghost = section(page.text, 'ghost');
    expect(ghost).toMatch(/data-status="down"/);
    expect(ghost).toContain('inactive');
    expect(ghost).toContain('manager unreachable: kvm-ferry does not answer on node ghost');
  });

  it('marks the silent peer inactive once its refresh times out, without holding anything else', async () => {
    const until = Date.now() + 15_000;
    while (alpha.deps.inventory.cache.view('tarpit')?.state === 'never' && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    const v = alpha.deps.inventory.cache.view('tarpit')!;
    expect(v.state, JSON.stringify(v)).toBe('inactive');
    expect(v.reason).toMatch(/^manager unreachable: /);
    const page = await api(alpha, 'GET', '/');
    expect(section(page.text, 'tarpit')).toMatch(/data-status="down"/);
  });

  it('draws the page without asking any node: no libvirt list, no peer request, no command per request', async () => {
    const counts = { local: 0, peers: 0, options: 0 };
    const inv = alpha.deps.node.inventory;
    const list = inv.list.bind(inv);
    inv.list = () => (counts.local++, list());
    const facts = alpha.deps.node.facts;
    const opts = facts.createOptions.bind(facts);
    facts.createOptions = () => (counts.options++, opts());
    const remotes = alpha.deps.peers.all().map((p) => p.remote);
    const saved = remotes.map((r) => r.call.bind(r));
    remotes.forEach((r, i) => (r.call = ((...a: Parameters<typeof r.call>) => (counts.peers++, saved[i]!(...a))) as typeof r.call));
    const commandsBefore = alpha.commands.length;
    try {
      for (let i = 0; i < 20; i++) expect((await api(alpha, 'GET', '/')).status).toBe(200);
      expect(counts).toEqual({ local: 0, peers: 0, options: 0 });
      expect(alpha.commands.length).toBe(commandsBefore);
    } finally {
      delete (inv as Partial<typeof inv>).list;
      delete (facts as Partial<typeof facts>).createOptions;
      remotes.forEach((r) => delete (r as Partial<typeof r>).call);
    }
  });

  it('re-reads a node right after a job on it ends (not at the next 60 s refresh)', async () => {
    const r = await api(alpha, 'POST', '/api/nodes/alpha/vms/web-a/start?wait=20', {});
    expect(r.json.job.state).toBe('ok');
    const until = Date.now() + 5_000;
    const state = () => alpha.deps.inventory.cache.view('alpha')!.vms.find((v) => v.name === 'web-a')?.state;
    while (state() !== 'running' && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(state()).toBe('running');
    expect(section((await api(alpha, 'GET', '/')).text, 'alpha')).toMatch(/data-vm="web-a" data-state="running"/);
  });

  it('serves the JSON list from the cache on ?cached=1, and every node with its age on /api/inventory', async () => {
    const vms = await api(alpha, 'GET', '/api/nodes/beta/vms?cached=1');
    expect(vms.status).toBe(200);
    expect(vms.json.map((v: { name: string }) => v.name)).toEqual(['web-b']);
    expect(vms.headers.get('x-kvm-ferry-as-of')).toMatch(/^\d{4}-/);
    expect((await api(alpha, 'GET', '/api/nodes/ghost/vms?cached=1')).status).toBe(503);
    expect((await api(alpha, 'GET', '/api/nodes/nope/vms?cached=1')).status).toBe(404);
    const inv = await api(alpha, 'GET', '/api/inventory');
    expect(inv.json.map((n: { name: string; state: string }) => [n.name, n.state])).toEqual([['alpha', 'active'], ['beta', 'active'], ['ghost', 'inactive'], ['tarpit', 'inactive']]);
    expect(typeof inv.json[1].ageSec).toBe('number');
  });
});

describe('GET /events', () => {
  it('tells an open page about a VM state change after a start from another request, within a few seconds', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${beta.url}/events`, { signal: ctl.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const seen = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        text += new TextDecoder().decode(value);
        if (/event: inventory\ndata: .*"kind":"vm-state".*"name":"web-b".*"state":"running"/.test(text)) return true;
      }
    })();
    try {
      const t0 = Date.now();
      const r = await api(beta, 'POST', '/api/nodes/beta/vms/web-b/start', {});
      expect(r.status).toBe(202);
      const ok = await Promise.race([seen, new Promise<false>((r) => setTimeout(() => r(false), 8_000))]);
      expect(ok, text).toBe(true);
      expect(Date.now() - t0).toBeLessThan(8_000);
      expect(text).toMatch(/^event: hello\n/);
    } finally {
      ctl.abort();
    }
  });

  it('refuses another site: a cross-site fetch and a foreign Origin get 403 and no stream', async () => {
    const cross = await fetch(`${alpha.url}/events`, { headers: { 'sec-fetch-site': 'cross-site' } });
    expect(cross.status).toBe(403);
    expect(cross.headers.get('content-type')).not.toMatch(/event-stream/);
    const foreign = await fetch(`${alpha.url}/events`, { headers: { origin: 'http://evil.example' } });
    expect(foreign.status).toBe(403);
    await foreign.text();
    await cross.text();
    expect(alpha.deps.inventoryEvents.size).toBe(0);
  });
});

describe('a local libvirtd that does not answer', () => {
  it('shows this node as "libvirt does not answer" and the page still renders at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kf-hung-page-'));
    const socks: Socket[] = [];
    const hung = createServer((s) => (socks.push(s), s.on('error', () => undefined)));
    await new Promise<void>((r) => hung.listen(join(dir, 'sock'), r));
    const f = makeFixture([]);
    const app = await startTestApp({ ...f, uri: `qemu+unix:///system?socket=${join(dir, 'sock')}` }, { nodeName: 'hung', libvirtTimeoutSec: 1, inventoryRefreshSec: 1 });
    try {
      const first = await api(app, 'GET', '/');
      expect(first.status).toBe(200);
      expect(section(first.text, 'hung')).toContain('libvirt does not answer');
      for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const page = await api(app, 'GET', '/');
        expect(page.status).toBe(200);
        expect(Date.now() - t0).toBeLessThan(1_000);
        expect(section(page.text, 'hung')).toMatch(/data-status="down"/);
      }
    } finally {
      for (const s of socks) s.destroy();
      await app.close();
      await new Promise((r) => hung.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
