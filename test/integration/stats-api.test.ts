import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';
import { openStatsDatabase } from '../../src/adapters/db/stats-db.js';
import { StatsWriter } from '../../src/adapters/db/stats-writer.js';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { LibvirtSampler } from '../../stats-daemon/libvirt-sampler.js';
import { StatsDaemon } from '../../stats-daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import type { Db } from '../../src/adapters/db/database.js';

/** The manager's stats routes and page on the test driver, fed by the daemon's real sampler and writer. */
let app: TestApp;
let db: Db;
let daemon: StatsDaemon;

beforeAll(async () => {
  const f = makeFixture([
    { name: 'kfst-web', vcpus: 2, memoryMiB: 512 },
    { name: 'kfst-off', state: 'shut-off' },
  ]);
  app = await startTestApp(f);
  db = openStatsDatabase(f.dataDir);
  const writer = new StatsWriter(db, app.config.stats);
  daemon = new StatsDaemon(new LibvirtSampler(new LibvirtConnection(f.uri), null), writer, silentLogger);
  // The test driver's cpuTime follows the wall clock, so two real ticks give a real delta.
  expect(await daemon.tick(Date.now())).toBe(1);
  await new Promise((r) => setTimeout(r, 1000));
  await daemon.tick(Date.now());
  // A VM that lived here once and has gone (migrated away): its history stays.
  writer.record([{ name: 'kfst-gone', uuid: null, ts: Math.floor(Date.now() / 1000) - 30, cpuPct: 12.5, ramMiB: 100, ramKind: 'rss' }], Math.floor(Date.now() / 1000));
});

afterAll(async () => {
  await daemon?.close();
  db?.close();
  await app?.close();
});

describe('GET /api/nodes/:node/vms/:vm/stats', () => {
  it('returns the last hour as columns, CPU per vCPU within 0–100, RAM labelled as assigned on the test driver', async () => {
    const r = await api(app, 'GET', '/api/nodes/alpha/vms/kfst-web/stats?range=1h');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ node: 'alpha', vm: 'kfst-web', range: '1h', ramKind: 'assigned', ramLabel: 'RAM assigned to the VM (not a measure of use)' });
    expect(r.json.uuid).toMatch(/^[0-9a-f-]{36}$/);
    const p = r.json.points;
    expect(p.t).toHaveLength(2);
    expect(p.cpu[0]).toBeNull(); // first sight: no delta yet
    // Wall-clock cpuTime on 2 vCPUs is 50 %.
    expect(p.cpu[1]).toBeGreaterThan(40);
    expect(p.cpu[1]).toBeLessThanOrEqual(60);
    expect(p.ram).toEqual([512, 512]);
    expect(r.json.daemonAgeSec).toBeLessThan(5);
  });

  it('defaults to 1h and answers the other ranges (empty until rollups exist)', async () => {
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/kfst-web/stats')).json.range).toBe('1h');
    for (const range of ['24h', '7d', '30d']) {
      const r = await api(app, 'GET', `/api/nodes/alpha/vms/kfst-web/stats?range=${range}`);
      expect(r.status).toBe(200);
      expect(r.json.range).toBe(range);
      expect(Array.isArray(r.json.points.t)).toBe(true);
    }
  });

  it('still serves the history of a VM that has left this node', async () => {
    const r = await api(app, 'GET', '/api/nodes/alpha/vms/kfst-gone/stats');
    expect(r.status).toBe(200);
    expect(r.json.points.cpu).toEqual([12.5]);
  });

  it('refuses a bad range, a hostile name, an unknown VM and an unknown node with one sentence', async () => {
    const cases: [string, number, RegExp][] = [
      ['/api/nodes/alpha/vms/kfst-web/stats?range=2y', 400, /^range must be one of 1h, 24h, 7d, 30d\.$/],
      ['/api/nodes/alpha/vms/%24(reboot)/stats', 400, /VM name must be/],
      ['/api/nodes/alpha/vms/kfst-nope/stats', 404, /^VM kfst-nope does not exist on this node and has no statistics here\.$/],
      ['/api/nodes/zeta/vms/kfst-web/stats', 404, /Node zeta/],
    ];
    for (const [path, status, msg] of cases) {
      const r = await api(app, 'GET', path);
      expect(r.status, path).toBe(status);
      expect(r.json.error.message).toMatch(msg);
    }
  });
});

describe('stats on the page', () => {
  it('draws CPU and RAM sparklines on a running VM\'s row, none on a stopped one, and node totals', async () => {
    const r = await api(app, 'GET', '/');
    expect(r.status).toBe(200);
    const row = (name: string) => r.text.split('<tr class="vm"').find((x) => x.includes(`data-vm="${name}"`)) ?? '';
    expect(row('kfst-web')).toMatch(/<svg class="spark-cpu"[\s\S]*<path d="M[\d.]+,[\d.]+/);
    expect(row('kfst-web')).toContain('class="spark-ram"');
    expect(row('kfst-web')).toContain('href="/nodes/alpha/vms/kfst-web"');
    expect(row('kfst-off')).not.toContain('<svg');
    expect(r.text).toMatch(/class="total-cpu">(0\.[5-9]|1\.[01])\d<\/strong> CPUs busy/);
    expect(r.text).toContain('class="total-ram">512 MiB</strong>');
  });

  it('has a VM page with server-drawn charts, range links, and uPlot served by the app itself', async () => {
    const r = await api(app, 'GET', '/nodes/alpha/vms/kfst-web?range=1h');
    expect(r.status).toBe(200);
    expect(r.text).toContain('id="chart-cpu"');
    expect(r.text).toContain('href="?range=30d"');
    expect(r.text).toContain('<script src="/static/vendor/uplot/uPlot.iife.min.js"');
    const js = await fetch(`${app.url}/static/vendor/uplot/uPlot.iife.min.js`);
    expect(js.status).toBe(200);
    expect(await js.text()).toContain('uPlot');
    expect((await fetch(`${app.url}/static/vm-charts.js`)).status).toBe(200);
    expect((await api(app, 'GET', '/nodes/alpha/vms/kfst-web?range=forever')).status).toBe(400);
  });
});

describe('stats of a VM on a peer node', () => {
  it('renders the VM page as a frame whose charts load from the peer through this manager', async () => {
    const f = makeFixture([]);
    const peerApp = await startTestApp(f, {
      peers: [{ name: 'beta', sshHost: '127.0.0.1', sshKeyFile: join(f.dir, 'no-key'), hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfst', dataAddress: '127.0.0.1' }],
    });
    try {
      const r = await api(peerApp, 'GET', '/nodes/beta/vms/kfst-far?range=7d');
      expect(r.status).toBe(200);
      expect(r.text).toContain('data-node="beta" data-vm="kfst-far" data-range="7d"');
      expect(r.text).toContain('kept by node beta');
      expect((await api(peerApp, 'GET', '/nodes/beta/vms/%24(x)')).status).toBe(400);
      expect((await api(peerApp, 'GET', '/nodes/gamma/vms/kfst-far')).status).toBe(404);
    } finally {
      await peerApp.close();
    }
  });
});
