import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { freshHttp as http } from '../helpers/fresh-http.js';
import { inNode, lab, LAB_NAT_PUBLIC_ADDR, LAB_NET, LAB_PRIV_NET, LAB_STATE, LAB_VPN_NET, pinHostKey, tryInNode } from '../helpers/lab.js';

/**
 * OpenVPN between nodes that have no route to each other: lab-b sits in a private
 * subnet behind a NAT router namespace; lab-a is "public" and runs the OpenVPN server.
 * Stopping the VPN cuts B off (shown, and refused in pre-flight) until it is started
 * again; a running guest then moves A → B over the tunnel; a certificate from another
 * CA is refused by the tunnel.
 */
const A = { name: 'lab-a', url: `http://${LAB_NET}.11:8080`, tun: `${LAB_VPN_NET}.1` };
const B = { name: 'lab-b', url: `http://${LAB_NAT_PUBLIC_ADDR}:8080`, tun: `${LAB_VPN_NET}.12`, priv: `${LAB_PRIV_NET}.12` };
const VM = 'kfvp-live';
const tmp = mkdtempSync(join(tmpdir(), 'kfvp-'));

const counterOn = (node: string): number => {
  const m = [...tryInNode(node, 'cat', `/var/log/libvirt/qemu/${VM}-serial.log`).out.matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};
const tunBytes = (node: string): { rx: number; tx: number } => {
  const s = JSON.parse(inNode(node, 'ip', '-j', '-s', 'link', 'show', 'dev', 'kfvpn0'))[0].stats64;
  return { rx: s.rx.bytes, tx: s.tx.bytes };
};
/**
 * ssh from `node` to `target` at `addr` with `node`'s peer key (the nodes were joined by
 * invite/join through the tunnel), `target`'s host key pinned at that address, running a step
 * the peer shell allows: it answers only if it is really `target` and the key is accepted.
 */
const sshFrom = (node: string, target: string, addr: string) => {
  const kh = pinHostKey(node, target, addr);
  return tryInNode(node, 'ssh', '-i', '/var/lib/kvm-ferry/peer_ed25519', '-o', `UserKnownHostsFile=${kh}`, '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=2', `root@${addr}`, "'df' '-B1' '--output=avail' '--' '/var/lib/kvm-ferry/images'");
};
const peerStatus = async (from: string, peer: string) => ((await http(from, 'GET', '/api/nodes')).json as { name: string; status: string; reason?: string }[]).find((n) => n.name === peer);

let browser: Browser | null = null;

/** Clicks a button on the node's page in headless chromium (confirm dialogs accepted); returns the VPN badge after the redirect. */
async function clickOnPage(base: string, selector: string): Promise<{ badge: string; dialogs: string[] }> {
  browser ??= await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(60_000);
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.accept();
    });
    await page.goto(`${base}/`);
    // POST → 303 → GET /: one committed navigation of the main frame.
    await Promise.all([page.waitForEvent('framenavigated', (f) => f === page.mainFrame()), page.click(selector)]);
    await page.waitForLoadState('load');
    return { badge: (await page.textContent('#vpn-state'))?.trim() ?? '', dialogs };
  } finally {
    await context.close();
  }
}

async function migrate(from: typeof A | typeof B, to: typeof A | typeof B) {
  const before = counterOn(from.name);
  const tun0 = tunBytes(from.name);
  const r = await http(from.url, 'POST', `/api/nodes/${from.name}/vms/${VM}/migrate?wait=180`, { to: to.name, mode: 'live' });
  expect(r.json.job?.state, JSON.stringify(r.json)).toBe('ok');
  const tun1 = tunBytes(from.name);
  expect((await http(to.url, 'GET', `/api/nodes/${to.name}/vms/${VM}`)).json.state).toBe('running');
  await waitFor(`the counter to continue on ${to.name}`, 30_000, () => counterOn(to.name) > before + 1);
  return { result: r.json.job.result as { bytesMoved: number; durationMs: number }, sentThroughTunnel: tun1.tx - tun0.tx };
}

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  // Inside the tunnel the admin may choose not to encrypt twice: this lab runs dataTransport: plain.
  process.env.KFLAB_DATA_TRANSPORT = 'plain';
  try {
    lab('up', '2', '--nat', B.name, '--with-manager');
  } finally {
    delete process.env.KFLAB_DATA_TRANSPORT;
  }
  inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', `/var/lib/kvm-ferry/images/${VM}.qcow2`);
  await waitFor('both managers', 60_000, async () => {
    const ok = await Promise.all([A, B].map((n) => http(n.url, 'GET', '/healthz').then((r) => r.status === 200, () => false)));
    return ok.every(Boolean);
  });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  lab('down');
  restoreLabInstanceEnv();
  rmSync(tmp, { recursive: true, force: true });
});

describe('OpenVPN between a public node and a node behind NAT', () => {
  it('has no direct route from A to B: only the tunnel joins them', () => {
    const route = tryInNode(A.name, 'ip', 'route', 'get', B.priv);
    expect(route.ok).toBe(false);
    expect(route.out).toMatch(/unreachable/i);
    expect(sshFrom(A.name, B.name, B.priv).ok).toBe(false);
    expect(inNode(A.name, 'ip', 'route', 'get', B.tun)).toMatch(/dev kfvpn0/);
    for (const [from, to, addr] of [[A.name, B.name, B.tun], [B.name, A.name, A.tun]] as const) {
      const r = sshFrom(from, to, addr);
      expect(r.ok, `${from} → ${to} at ${addr}: ${r.out}`).toBe(true);
      expect(r.out).toMatch(/Avail\s+\d+/);
    }
  });

  it('shows the tunnel on both nodes: server with B connected, client with its pushed address', async () => {
    const a = (await http(A.url, 'GET', '/api/vpn')).json;
    expect(a).toMatchObject({ configured: true, active: true, role: 'server', address: `${A.tun}/24` });
    expect(a.peers).toEqual([expect.objectContaining({ name: B.name, tunnelAddress: B.tun, realAddress: expect.stringMatching(new RegExp(`^${LAB_NAT_PUBLIC_ADDR.replaceAll('.', '\\.')}:`)) })]);
    const b = (await http(B.url, 'GET', '/api/vpn')).json;
    expect(b).toMatchObject({ active: true, role: 'client', address: `${B.tun}/24` });
    expect((await peerStatus(A.url, B.name))?.status).toBe('up');
  });

  it('boots a guest on A', async () => {
    const created = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: VM, vcpus: 1, memoryMiB: 128, source: 'import', image: `${VM}.qcow2` });
    expect(created.json.job?.state, JSON.stringify(created.json)).toBe('ok');
    await waitFor('the guest to count on A', 90_000, () => counterOn(A.name) >= 3);
  });

  it('stopping the VPN with the page\'s button cuts B off within 10 s and pre-flight refuses; starting it brings B back', async () => {
    const stop = await clickOnPage(A.url, '#vpn-stop');
    expect(stop.dialogs).toEqual([expect.stringMatching(/^Stop the VPN\?/)]);
    expect(stop.badge).toBe('inactive');
    expect((await http(A.url, 'GET', '/')).text).toMatch(/id="vpn-start"/);
    const t0 = Date.now();
    const down = await waitFor('B to show down on A', 10_000, async () => {
      const s = await peerStatus(A.url, B.name);
      return s?.status === 'down' ? s : null;
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(down.reason).toBe(`The VPN on this node is stopped, and node ${B.name} is reached only through it (${B.tun}); start the VPN first.`);
    const check = (await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate/check`, { to: B.name })).json;
    expect(check.go).toBe(false);
    expect(check.checks.find((c: { id: string }) => c.id === 'peer-reachable')).toEqual({ id: 'peer-reachable', ok: false, message: down.reason });
    const refused = await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate`, { to: B.name });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toBe(`Migration of ${VM} to ${B.name} refused: ${down.reason}`);
    expect((await http(A.url, 'POST', '/api/vpn/stop')).status).toBe(409);

    expect((await clickOnPage(A.url, '#vpn-start')).badge).toBe('active');
    expect((await http(A.url, 'GET', '/api/vpn')).json).toMatchObject({ active: true, address: `${A.tun}/24` });
    expect((await http(A.url, 'POST', '/api/vpn/start')).status).toBe(409);
    // B's client retries with backoff (TLS retransmit 2, 4, 8 … s) while A's server was stopped.
    const t1 = Date.now();
    let last: unknown = null;
    await waitFor('B to be up again on A', 60_000, async () => {
      last = await peerStatus(A.url, B.name);
      return (last as { status?: string } | undefined)?.status === 'up';
    }).catch((e: Error) => {
      throw new Error(`${e.message}; last status: ${JSON.stringify(last)}`);
    });
    // eslint-disable-next-line no-console
    console.log(`B reconnected ${((Date.now() - t1) / 1000).toFixed(1)} s after A's VPN started`);
    expect((await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate/check`, { to: B.name })).json.go).toBe(true);
  });

  it('moves the running guest A → B through the tunnel, alive, unencrypted by the explicit choice pre-flight names', async () => {
    const check = (await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate/check`, { to: B.name })).json;
    expect(check.checks.find((c: { id: string }) => c.id === 'data-transport')).toEqual({
      id: 'data-transport', ok: true,
      message: `Memory and disks go to ${B.name} (${B.tun}) unencrypted (dataTransport: plain); anyone on that network path can read them.`,
    });
    const there = await migrate(A, B);
    // Every byte libvirt moved went into A's tunnel device (plus headers and keepalives).
    expect(there.result.bytesMoved).toBeGreaterThan(1024 * 1024);
    expect(there.sentThroughTunnel).toBeGreaterThanOrEqual(there.result.bytesMoved);
    // eslint-disable-next-line no-console
    console.log(`vpn migration A→B: ${JSON.stringify(there)}`);
  });

  it('refuses a client certificate from another CA', () => {
    // Same tls-crypt key and the real CA to check the server with: only the client's own cert is foreign.
    execVpnCerts(['--out', `${tmp}/foreign`, '--server', `${A.name}=${LAB_NET}.11`, '--net', `${LAB_VPN_NET}.0`, '--tls-crypt-key', `${LAB_STATE}/vpn/ca/tls-crypt.key`, B.name]);
    const realCa = readFileSync(`${LAB_STATE}/vpn/ca/ca.crt`, 'utf8').trim();
    const conf = readFileSync(`${tmp}/foreign/${B.name}/openvpn.conf`, 'utf8').replace(/<ca>[\s\S]*?<\/ca>/, `<ca>\n${realCa}\n</ca>`);
    writeFileSync(`${tmp}/foreign.conf`, conf, { mode: 0o600 });
    const serverLog = `${LAB_STATE}/${A.name}/kvm-ferry/vpn/openvpn.log`;
    const logBefore = readFileSync(serverLog, 'utf8').length;
    const r = tryInNode(B.name, 'timeout', '6', 'openvpn', '--config', `${tmp}/foreign.conf`, '--dev', 'kfbad0', '--connect-retry-max', '2', '--log', `${tmp}/foreign.log`);
    expect(r.ok).toBe(false);
    expect(readFileSync(`${tmp}/foreign.log`, 'utf8')).not.toMatch(/Initialization Sequence Completed/);
    expect(readFileSync(serverLog, 'utf8').slice(logBefore)).toMatch(/VERIFY ERROR: depth=0, error=unable to get local issuer certificate/);
    expect(tryInNode(B.name, 'ip', 'link', 'show', 'kfbad0').ok).toBe(false);
  });
});

function execVpnCerts(args: string[]): void {
  execFileSync(join(__dirname, '..', '..', 'scripts', 'vpn-certs.sh'), args, { stdio: 'pipe', timeout: 30_000 });
}
