import { afterEach, describe, expect, it } from 'vitest';
import { makeFixture, type Fixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * Maintenance on the libvirt test driver: the marker's refusals, the API's sentences,
 * and the marker surviving a restart. Moves between real nodes are tested on the lab
 * (test/e2e/maintenance.test.ts).
 */
let app: TestApp | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

// A peer whose manager cannot be reached: nothing listens on that port.
const deadPeer = { name: 'beta', sshHost: '127.0.0.1', sshPort: 1, sshKeyFile: '/nonexistent/key', hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl', dataAddress: '127.0.0.1' };

function world(): Fixture {
  return makeFixture([
    { name: 'web-01', memoryMiB: 512 },
    { name: 'db-01', state: 'shut-off', memoryMiB: 256 },
  ]);
}

describe('maintenance API', () => {
  it('plans with a reason for every VM that cannot move, and refuses bad adjustments with a sentence', async () => {
    app = await startTestApp(world(), { peers: [deadPeer] });
    const st = await api(app, 'GET', '/api/nodes/alpha/maintenance');
    expect(st.status).toBe(200);
    expect(st.json).toMatchObject({ node: 'alpha', state: 'normal', moves: [], away: [] });

    const r = await api(app, 'POST', '/api/nodes/alpha/maintenance/plan', { shutOff: 'stay' });
    expect(r.status).toBe(200);
    const by = Object.fromEntries(r.json.plan.entries.map((e: { vm: string }) => [e.vm, e]));
    expect(by['db-01']).toMatchObject({ action: 'stay', reason: expect.stringMatching(/^Shut off; it stays/) });
    expect(by['web-01'].action).toBe('cannot');
    expect(by['web-01'].reason).toMatch(/^Cannot move: no node has room: beta: its kvm-ferry cannot be reached/);

    for (const [body, message] of [
      [{ overrides: { 'no-such-vm': 'beta' } }, 'There is no VM named no-such-vm on this node.'],
      [{ overrides: { 'web-01': 'gamma' } }, 'The destination of web-01 must be a peer node (beta), "auto" or "exclude".'],
      [{ shutOff: 'sometimes' }, 'shutOff must be one of: stay, offline.'],
    ] as const) {
      const bad = await api(app, 'POST', '/api/nodes/alpha/maintenance/plan', body);
      expect(bad.status).toBe(400);
      expect(bad.json.error.message).toBe(message);
    }
    const bad = await api(app, 'POST', '/api/nodes/alpha/maintenance/start', { overrides: { 'web-01': 'gamma' } });
    expect(bad.status).toBe(400);
    expect((await api(app, 'GET', '/api/nodes/alpha/maintenance')).json.state).toBe('normal');
  });

  it('in maintenance refuses new VMs and starts with a sentence, keeps the marker over a restart, and takes work again once ended', async () => {
    const f = world();
    app = await startTestApp(f);
    const start = await api(app, 'POST', '/api/nodes/alpha/maintenance/start?wait=30', {});
    expect(start.status, JSON.stringify(start.json)).toBe(200);
    expect(start.json.job).toMatchObject({ kind: 'maintenance', state: 'ok', message: 'Evacuation finished: 0 moved, 0 failed, 2 stayed.' });
    expect((await api(app, 'GET', '/api/nodes/alpha/maintenance')).json).toMatchObject({ state: 'maintenance', summary: 'Evacuation finished: 0 moved, 0 failed, 2 stayed.' });
    expect((await api(app, 'POST', '/api/nodes/alpha/maintenance/start', {})).json.error.message).toBe('Node alpha is already in maintenance.');

    const refusedStart = await api(app, 'POST', '/api/nodes/alpha/vms/db-01/start');
    expect(refusedStart.status).toBe(409);
    expect(refusedStart.json.error).toMatchObject({ code: 'NODE_IN_MAINTENANCE', message: 'Node alpha is in maintenance; VMs are not started here until its maintenance ends.' });
    const refusedCreate = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'new-01', vcpus: 1, memoryMiB: 128, diskGiB: 1 });
    expect(refusedCreate.status).toBe(409);
    expect(refusedCreate.json.error.message).toBe('Node alpha is in maintenance; it takes no new VMs until its maintenance ends.');
    const vms = (await api(app, 'GET', '/api/nodes/alpha/vms')).json;
    expect(vms.map((v: { name: string; state: string }) => `${v.name}:${v.state}`)).toEqual(['db-01:shut-off', 'web-01:running']);

    // A restarted manager (same SQLite) is still in maintenance.
    await app.close();
    app = await startTestApp(f);
    expect((await api(app, 'GET', '/api/nodes/alpha/maintenance')).json.state).toBe('maintenance');
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/db-01/start')).status).toBe(409);

    const end = await api(app, 'POST', '/api/nodes/alpha/maintenance/end', {});
    expect(end.status).toBe(200);
    expect(end.json.maintenance).toMatchObject({ state: 'normal', summary: 'Maintenance ended; no VM was away.' });
    expect((await api(app, 'POST', '/api/nodes/alpha/maintenance/end', {})).json.error.message).toBe('Node alpha is not in maintenance.');
    expect((await api(app, 'POST', '/api/nodes/alpha/maintenance/abort', {})).json.error.message).toBe('Node alpha runs no evacuation or homecoming to abort.');
    const started = await api(app, 'POST', '/api/nodes/alpha/vms/db-01/start?wait=30');
    expect(started.json.job?.state, JSON.stringify(started.json)).toBe('ok');
  });

  it('shows the plan on the page: one row per VM with its decision and a destination choice', async () => {
    app = await startTestApp(world(), { peers: [deadPeer] });
    const page = await api(app, 'GET', '/nodes/alpha/maintenance?plan=1&shutOff=stay&to:web-01=auto');
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/<tr class="maint-entry maint-cannot" data-vm="web-01" data-action="cannot"/);
    expect(page.text).toMatch(/<tr class="maint-entry maint-stay" data-vm="db-01" data-action="stay"/);
    expect(page.text).toContain('<select name="to:web-01"');
    expect(page.text).toContain('id="start-maintenance"');
    const bad = await api(app, 'GET', '/nodes/alpha/maintenance?plan=1&to:web-01=gamma');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('The destination of web-01 must be a peer node (beta), &#34;auto&#34; or &#34;exclude&#34;.');
    expect((await api(app, 'GET', '/')).text).toContain('href="/nodes/alpha/maintenance"');
  });

  it('streams the status as Server-Sent Events, again when a run changes it', async () => {
    app = await startTestApp(world());
    const ctrl = new AbortController();
    const res = await fetch(`${app.url}/api/nodes/alpha/maintenance/events`, { signal: ctrl.signal });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = '';
    const events = () => [...text.matchAll(/event: status\ndata: (.*)\n\n/g)].map((m) => JSON.parse(m[1]!));
    const readUntil = async (ok: () => boolean) => {
      while (!ok()) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
    };
    await readUntil(() => events().length >= 1);
    expect(events()[0]).toMatchObject({ node: 'alpha', state: 'normal' });
    await api(app, 'POST', '/api/nodes/alpha/maintenance/start?wait=30', {});
    await readUntil(() => events().some((e) => e.state === 'maintenance'));
    expect(events().at(-1)).toMatchObject({ state: 'maintenance', summary: 'Evacuation finished: 0 moved, 0 failed, 2 stayed.' });
    ctrl.abort();
  });
});
