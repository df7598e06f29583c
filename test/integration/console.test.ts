import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeFixture } from '../helpers/fixture.js';
import { api } from '../helpers/test-app.js';
import { consoleGreeting, openConsoleWs, startConsoleApp, type ConsoleTestApp } from '../helpers/console-app.js';
import { startQemuVnc, type QemuVnc } from '../helpers/qemu-vnc.js';
import { CONSOLE_CLOSE } from '../../src/domain/console.js';

/**
 * Console tickets and the websocket proxy, on a test-driver world whose running VM
 * names the VNC port of a real (paused) QEMU: what reaches the browser is QEMU's own
 * RFB greeting, through the app's /console/ws.
 */

let qemu: QemuVnc;
let app: ConsoleTestApp | null = null;

beforeAll(async () => {
  qemu = await startQemuVnc();
});
afterAll(async () => {
  await qemu?.stop();
});
afterEach(async () => {
  await app?.close();
  app = null;
});

async function world(overrides: Record<string, unknown> = {}) {
  const f = makeFixture([
    { name: 'web-01', state: 'running', vncPort: qemu.port },
    { name: 'db-01', state: 'running', vncPort: qemu.port },
    { name: 'off-01', state: 'shut-off', vncPort: 5999 },
    { name: 'headless', state: 'running' },
  ]);
  app = await startConsoleApp(f, overrides);
  return app;
}

const ticketFor = async (a: ConsoleTestApp, vm: string) => {
  const r = await api(a, 'POST', `/api/nodes/alpha/vms/${vm}/console`);
  expect(r.status, r.text).toBe(201);
  return r.json as { ticket: string; wsPath: string; expiresAt: string };
};

describe('console tickets', () => {
  it('are 32 random bytes, bound to node and VM, valid for 30 s, and open the real VNC stream once', async () => {
    const a = await world();
    const t = await ticketFor(a, 'web-01');
    expect(t.ticket).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(t.ticket, 'base64url')).toHaveLength(32);
    expect(new Date(t.expiresAt).getTime()).toBe(a.clock.ms + 30_000);
    expect(t.wsPath).toBe(`/console/ws?node=alpha&vm=web-01&ticket=${t.ticket}`);
    expect((await ticketFor(a, 'web-01')).ticket).not.toBe(t.ticket);

    const first = await openConsoleWs(a.url, t.wsPath, { untilBytes: 12 });
    expect(first.received.subarray(0, 12).toString()).toBe('RFB 003.008\n');
    first.ws.close();

    const again = await openConsoleWs(a.url, t.wsPath);
    expect(again.closeCode).toBe(CONSOLE_CLOSE.TICKET_USED);
    expect(again.closeReason).toBe('This console ticket was already used; reconnect to get a new one.');
    expect(again.received).toHaveLength(0);
  });

  it('refuses an expired ticket before connecting anything', async () => {
    const a = await world();
    const t = await ticketFor(a, 'web-01');
    a.clock.ms += 30_001;
    const r = await openConsoleWs(a.url, t.wsPath);
    expect(r.closeCode).toBe(CONSOLE_CLOSE.TICKET_EXPIRED);
    expect(r.closeReason).toMatch(/expired before it was used/);
    expect(r.received).toHaveLength(0);
  });

  it('refuses a ticket presented for another VM, and burns it', async () => {
    const a = await world();
    const t = await ticketFor(a, 'web-01');
    const other = await openConsoleWs(a.url, t.wsPath.replace('vm=web-01', 'vm=db-01'));
    expect(other.closeCode).toBe(CONSOLE_CLOSE.TICKET_WRONG_VM);
    expect(other.received).toHaveLength(0);
    expect((await openConsoleWs(a.url, t.wsPath)).closeCode).toBe(CONSOLE_CLOSE.TICKET_USED);
  });

  it('refuses made-up tickets, malformed requests and other sites', async () => {
    const a = await world();
    expect((await openConsoleWs(a.url, `/console/ws?node=alpha&vm=web-01&ticket=${'A'.repeat(43)}`)).closeCode).toBe(CONSOLE_CLOSE.TICKET_UNKNOWN);
    expect((await openConsoleWs(a.url, '/console/ws?node=alpha&vm=web-01')).httpStatus).toBe(400);
    expect((await openConsoleWs(a.url, '/console/ws?node=alpha&vm=$(reboot)&ticket=x')).httpStatus).toBe(400);
    expect((await openConsoleWs(a.url, '/elsewhere')).httpStatus).toBe(404);
    // Origin is checked before the ticket is redeemed: a cross-site attempt does not burn it.
    const t = await ticketFor(a, 'web-01');
    expect((await openConsoleWs(a.url, t.wsPath, { origin: 'https://evil.example' })).httpStatus).toBe(403);
    const same = await openConsoleWs(a.url, t.wsPath, { origin: a.url, untilBytes: 12 });
    expect(same.received.toString()).toBe('RFB 003.008\n');
    same.ws.close();
  });

  it('are not issued for a stopped VM, a VM without VNC, a missing VM, an unknown node, or a cross-site request', async () => {
    const a = await world();
    const cases: [string, number, RegExp][] = [
      ['/api/nodes/alpha/vms/off-01/console', 409, /^VM off-01 is not running \(Shut off\); start it to use its console\.$/],
      ['/api/nodes/alpha/vms/headless/console', 409, /^VM headless has no VNC display/],
      ['/api/nodes/alpha/vms/ghost/console', 404, /^VM ghost is not on node alpha: it was migrated away or deleted\.$/],
      ['/api/nodes/nowhere/vms/web-01/console', 404, /^Node nowhere is not known/],
      ['/api/nodes/alpha/vms/..%2Fetc/console', 400, /VM name must be/],
    ];
    for (const [path, status, message] of cases) {
      const r = await api(a, 'POST', path);
      expect(r.status, path).toBe(status);
      expect(r.json.error.message, path).toMatch(message);
    }
    const cross = await api(a, 'POST', '/api/nodes/alpha/vms/web-01/console', undefined, { origin: 'https://evil.example' });
    expect(cross.status).toBe(403);
    expect(a.deps.console.tickets.size).toBe(0);
  });

  it('ends only the console whose browser sends a broken frame; the manager keeps serving', async () => {
    const a = await world();
    const bad = await openConsoleWs(a.url, (await ticketFor(a, 'web-01')).wsPath, { untilBytes: 12 });
    const closed = new Promise<number>((r) => bad.ws.once('close', (c) => r(c)));
    // An unmasked client frame violates RFC 6455: the server side of this socket errors.
    (bad.ws as unknown as { _socket: import('node:net').Socket })._socket.write(Buffer.from([0x82, 0x01, 0x00]));
    expect(await closed).toBe(1002);
    expect(await consoleGreeting(a.url, 'alpha', 'web-01')).toBe('RFB 003.008\n');
  });

  it('closes the console with a sentence when the VNC server goes away', async () => {
    const own = await startQemuVnc();
    try {
      const f = makeFixture([{ name: 'short', state: 'running', vncPort: own.port }]);
      app = await startConsoleApp(f);
      const t = await ticketFor(app, 'short');
      const ws = await openConsoleWs(app.url, t.wsPath, { untilBytes: 12 });
      const closed = new Promise<[number, string]>((r) => ws.ws.once('close', (c, why) => r([c, why.toString()])));
      await own.stop();
      const [code, reason] = await closed;
      expect(code).toBe(CONSOLE_CLOSE.VNC_CLOSED);
      expect(reason).toBe('The VNC server of VM short closed the connection: the VM stopped or moved.');
      // The server forgets the session once its side of the closing handshake ends.
      for (let i = 0; i < 40 && app.sockets.sessions > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(app.sockets.sessions).toBe(0);
    } finally {
      await own.stop();
    }
  });
});

describe('console page and status', () => {
  it('serves noVNC from the app under a CSP that allows only same-origin websockets', async () => {
    const a = await world();
    const rfb = await fetch(`${a.url}/static/vendor/novnc/core/rfb.js`);
    expect(rfb.status).toBe(200);
    expect(rfb.headers.get('content-type')).toMatch(/javascript/);
    expect((await fetch(`${a.url}/static/vendor/novnc/vendor/pako/lib/zlib/inflate.js`)).status).toBe(200);
    expect((await fetch(`${a.url}/static/vendor/novnc/core/../../../package.json`)).status).toBe(404);
    const page = await api(a, 'GET', '/nodes/alpha/vms/web-01/console');
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("connect-src 'self'");
    expect(page.text).toContain('data-vm="web-01"');
    expect(page.text).toContain('<script type="module" src="/static/console.js">');
    expect(page.text).toMatch(/listens on localhost only, so connect through an SSH tunnel/);
  });

  it('links to the node a VM was migrated to, from this node\'s record of the migration', async () => {
    const a = await world({
      peers: [{ name: 'beta', sshHost: '127.0.0.1', sshPort: 1, sshKeyFile: '/nonexistent', hostKey: 'ssh-ed25519 AAAA', dataAddress: '127.0.0.1', url: 'https://beta.example/' }],
    });
    const job = a.deps.jobsRepo.start({ kind: 'migrate', node: 'alpha', vm: 'moved-01', user: null, params: { to: 'beta', mode: 'live' }, message: 'Migrating' });
    a.deps.jobsRepo.finish(job.id, 'ok', 'VM moved-01 migrated to beta in 1.3 s.');
    const s = await api(a, 'GET', '/api/nodes/alpha/vms/moved-01/console');
    expect(s.json).toMatchObject({
      available: false, code: CONSOLE_CLOSE.VM_GONE,
      message: 'VM moved-01 is not on node alpha any more: it was migrated to node beta.',
      movedTo: { node: 'beta', consolePath: '/nodes/beta/vms/moved-01/console', peerUrl: 'https://beta.example/nodes/beta/vms/moved-01/console' },
    });
    const page = await api(a, 'GET', '/nodes/alpha/vms/moved-01/console');
    expect(page.text).toContain('<a href="/nodes/beta/vms/moved-01/console">beta</a>');
    // During the final checks of a migration the VM is already gone from here: follow it too.
    const running = a.deps.jobsRepo.start({ kind: 'migrate', node: 'alpha', vm: 'moving-01', user: null, params: { to: 'beta', mode: 'live' }, message: 'Migrating' });
    expect((await api(a, 'GET', '/api/nodes/alpha/vms/moving-01/console')).json.movedTo.node).toBe('beta');
    a.deps.jobsRepo.finish(running.id, 'failed', 'Migration failed.');
    expect((await api(a, 'GET', '/api/nodes/alpha/vms/moving-01/console')).json.movedTo).toBeNull();
    // A peer that cannot be reached: one sentence, no ticket, and the page says the same.
    const post = await api(a, 'POST', '/api/nodes/beta/vms/web-01/console');
    expect(post.status).toBe(503);
    expect(post.json.error.message).toMatch(/^The pinned SSH host key for node beta is malformed/);
    const peerPage = await api(a, 'GET', '/nodes/beta/vms/web-01/console');
    expect(peerPage.status).toBe(200);
    expect(peerPage.text).toContain('The pinned SSH host key for node beta is malformed');
    expect(peerPage.text).toContain('data-available="false"');
    // Without a record the page says what it knows.
    const ghost = await api(a, 'GET', '/api/nodes/alpha/vms/ghost/console');
    expect(ghost.json).toMatchObject({ available: false, movedTo: null, message: 'VM ghost is not on node alpha: it was migrated away or deleted.' });
  });
});
