import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';

let app: TestApp | null = null;
let child: ChildProcess | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
  child?.kill('SIGKILL');
  child = null;
});

function vpnConfig(dir: string) {
  return {
    configFile: join(dir, 'openvpn.conf'),
    pidFile: join(dir, 'vpn.pid'),
    statusFile: join(dir, 'vpn.status'),
    logFile: join(dir, 'vpn.log'),
    interface: 'kfvptest0',
    subnet: '10.199.0.0/24',
  };
}

const peerInTunnel = {
  name: 'beta',
  sshHost: '10.199.0.12',
  sshKeyFile: '/nonexistent/id_ed25519',
  hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOqF0Zr3ZrH2GNTPd5SLNfTWp4Hv8Aq3mMuKQqL7Ck2J',
  dataAddress: '10.199.0.12',
};

describe('VPN API and panel', () => {
  it('says when no VPN is configured, and refuses start and stop with 404', async () => {
    const f = makeFixture();
    app = await startTestApp(f);
    expect((await api(app, 'GET', '/api/vpn')).json).toEqual({ configured: false });
    const r = await api(app, 'POST', '/api/vpn/start');
    expect(r.status).toBe(404);
    expect(r.json.error.message).toBe('No VPN is configured on this node (vpn: in the config file).');
    expect(await (await fetch(`${app.url}/`)).text()).not.toMatch(/id="vpn"/);
  });

  it('shows a stopped VPN with a Start button, answers 409 to stop, and marks peers in the tunnel subnet down at once', async () => {
    const f = makeFixture();
    app = await startTestApp(f, { vpn: vpnConfig(f.dir), peers: [peerInTunnel] });
    expect((await api(app, 'GET', '/api/vpn')).json).toMatchObject({ configured: true, active: false, address: null, peers: [] });
    const page = await (await fetch(`${app.url}/`)).text();
    expect(page).toMatch(/id="vpn-state">inactive</);
    expect(page).toMatch(/<form method="post" action="\/vpn\/start">/);
    const stop = await api(app, 'POST', '/api/vpn/stop');
    expect(stop.status).toBe(409);
    expect(stop.json.error.message).toBe('The VPN is not running.');
    const t0 = Date.now();
    const nodes = (await api(app, 'GET', '/api/nodes')).json;
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(nodes[1]).toEqual({ name: 'beta', local: false, status: 'down', reason: 'The VPN on this node is stopped, and node beta is reached only through it (10.199.0.12); start the VPN first.' });
    expect(app.commands.some((c) => c.file === 'ssh' || c.args.includes('virsh'))).toBe(false);
  });

  it('never treats a process that is not our openvpn as the VPN, and never signals it', async () => {
    const f = makeFixture();
    const cfg = vpnConfig(f.dir);
    child = spawn('sleep', ['60'], { stdio: 'ignore' });
    writeFileSync(cfg.pidFile, `${child.pid}\n`);
    app = await startTestApp(f, { vpn: cfg });
    expect((await api(app, 'GET', '/api/vpn')).json.active).toBe(false);
    expect((await api(app, 'POST', '/api/vpn/stop')).status).toBe(409);
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
  });

  it('reports a config file that does not exist, or that openvpn refuses, with one sentence and the reason as detail', async () => {
    const f = makeFixture();
    const cfg = vpnConfig(f.dir);
    app = await startTestApp(f, { vpn: cfg });
    const missing = await api(app, 'POST', '/api/vpn/start');
    expect(missing.status).toBe(502);
    expect(missing.json.error.message).toBe(`The VPN config file ${cfg.configFile} does not exist; create it with scripts/vpn-certs.sh.`);
    writeFileSync(cfg.configFile, 'dev kfvptest0\nno-such-option 1\n');
    const bad = await api(app, 'POST', '/api/vpn/start');
    expect(bad.status).toBe(502);
    expect(bad.json.error.code).toBe('VPN_FAILED');
    expect(bad.json.error.message).toMatch(/^OpenVPN (refused to start|stopped right after starting)/);
    expect(bad.json.error.detail).toMatch(/no-such-option/);
    const run = app.commands.find((c) => c.file === 'openvpn');
    expect(run?.args).toEqual(['--config', cfg.configFile, '--daemon', 'kvm-ferry-vpn', '--writepid', cfg.pidFile, '--status', cfg.statusFile, '1', '--status-version', '2', '--log-append', cfg.logFile]);
  });
});
