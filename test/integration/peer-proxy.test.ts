import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLoopbackSshd, type LoopbackSshd } from '../helpers/loopback-sshd.js';
import { makeFixture } from '../helpers/fixture.js';
import { api, fromNginx, startTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * Two real managers: "alpha" knows "beta" as a peer and reaches beta's API through a
 * real sshd on loopback (ssh2 tunnel to beta's manager port), as nodes do in production.
 */
let sshd: LoopbackSshd;
let alpha: TestApp;
let beta: TestApp;
let betaPort: number;

const peerEntry = (port: number, hostKey = () => sshd.hostKey) => ({
  name: 'beta', sshHost: '127.0.0.1', sshPort: sshd.port, sshUser: 'root', sshKeyFile: sshd.clientKey,
  hostKey: hostKey(), dataAddress: '127.0.0.1', managerHost: '127.0.0.1', managerPort: port,
});

beforeAll(async () => {
  sshd = await startLoopbackSshd();
  const fb = makeFixture([{ name: 'web-b', state: 'shut-off', disks: [{ path: '/var/lib/libvirt/images/web-b.qcow2' }] }]);
  // Beta knows alpha as a peer too: a request alpha forwards is recorded as alpha's.
  beta = await startTestApp(fb, { nodeName: 'beta', peers: [{ ...peerEntry(1), name: 'alpha' }] });
  betaPort = Number(new URL(beta.url).port);
  const fa = makeFixture([{ name: 'web-a' }]);
  alpha = await startTestApp(fa, { nodeName: 'alpha', peers: [peerEntry(betaPort)] });
}, 30_000);

afterAll(async () => {
  await alpha?.close();
  await beta?.close();
  sshd?.stop();
});

describe('a peer node seen from this node', () => {
  it('lists the peer as up, with its VMs from its own manager', async () => {
    const nodes = await api(alpha, 'GET', '/api/nodes');
    expect(nodes.json).toEqual([
      { name: 'alpha', local: true, status: 'up' },
      { name: 'beta', local: false, status: 'up' },
    ]);
    const vms = await api(alpha, 'GET', '/api/nodes/beta/vms');
    expect(vms.status).toBe(200);
    expect(vms.json.map((v: { name: string }) => v.name)).toEqual(['web-b']);
  });

  it('runs an action on the peer as a job there, recorded as the peer and the user nginx authenticated here', async () => {
    const r = await api(alpha, 'POST', '/api/nodes/beta/vms/web-b/start?wait=20', {}, fromNginx(alpha, 'olga'));
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.job).toMatchObject({ kind: 'start', node: 'beta', vm: 'web-b', state: 'ok', user: 'peer:alpha/olga' });
    expect(r.headers.get('location')).toBe(`/api/nodes/beta/jobs/${r.json.job.id}`);
    // The job lives on beta: beta has it, alpha's own job list does not.
    expect((await api(beta, 'GET', `/api/jobs/${r.json.job.id}`)).json.kind).toBe('start');
    expect((await api(alpha, 'GET', '/api/jobs')).json).toEqual([]);
    expect((await api(alpha, 'GET', `/api/nodes/beta/jobs/${r.json.job.id}`)).json.state).toBe('ok');
    expect((await api(beta, 'GET', '/api/nodes/beta/vms/web-b')).json.state).toBe('running');
  });

  it("passes the peer's own errors on unchanged", async () => {
    const r = await api(alpha, 'POST', '/api/nodes/beta/vms/nope/start', {});
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ code: 'VM_NOT_FOUND' });
    const bad = await api(alpha, 'POST', '/api/nodes/beta/vms/$(id)/start', {});
    expect(bad.status).toBe(400);
  });

  it('streams the events of a job on the peer', async () => {
    const r = await api(alpha, 'POST', '/api/nodes/beta/vms/web-b/poweroff?wait=20', {});
    const res = await fetch(`${alpha.url}/api/nodes/beta/jobs/${r.json.job.id}/events`);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    expect(text).toMatch(/^event: end\ndata: \{.*"kind":"poweroff"/m);
  });

  it('shows both nodes on the page, with the peer VM and a migrate button', async () => {
    const page = await api(alpha, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('id="node-beta"');
    expect(page.text).toMatch(/data-vm="web-b"/);
    expect(page.text).toContain('action="/nodes/beta/vms/web-b/migrate"');
  });

  it('shows the peer as inactive with a reason when its manager is down, without holding the page', async () => {
    const dead = await startTestApp(makeFixture([]), { nodeName: 'alpha2', peers: [peerEntry(1)] });
    try {
      const started = Date.now();
      const nodes = await api(dead, 'GET', '/api/nodes');
      expect(nodes.json[1]).toMatchObject({ name: 'beta', status: 'down', reason: 'kvm-ferry does not answer on node beta; start it there (systemctl start kvm-ferry).' });
      const page = await api(dead, 'GET', '/');
      expect(page.status).toBe(200);
      expect(page.text).toMatch(/data-node="beta" data-status="down"/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await dead.close();
    }
  });

  it('refuses a peer whose host key does not match the pinned one', async () => {
    const spoofed = await startTestApp(makeFixture([]), { nodeName: 'alpha3', peers: [peerEntry(betaPort, () => sshd.otherHostKey)] });
    try {
      const nodes = await api(spoofed, 'GET', '/api/nodes');
      expect(nodes.json[1].status).toBe('down');
      expect(nodes.json[1].reason).toMatch(/host key does not match the pinned key/);
      const vms = await api(spoofed, 'GET', '/api/nodes/beta/vms');
      expect(vms.status).toBe(503);
    } finally {
      await spoofed.close();
    }
  });
});
