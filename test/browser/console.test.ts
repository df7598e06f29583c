import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { startConsoleApp, type ConsoleTestApp } from '../helpers/console-app.js';
import { startLoopbackSshd, type LoopbackSshd } from '../helpers/loopback-sshd.js';
import { GUEST_DIR, removeDomains, removePoolsUnder, requireRealLibvirt, virsh } from '../helpers/lab-prereqs.js';

/**
 * The console in Debian's chromium against a real TCG guest on this node's
 * qemu:///system: once directly (127.0.0.1:port) and once as if the guest were on a
 * peer — "beta" is this same machine reached through a real sshd on loopback, so the
 * VNC bytes ride an ssh2 tunnel. The canvas must show the guest's real screen.
 */

const SHOTS = '/tmp/kvm-ferry-shots';
const prefix = `kfcn-${randomBytes(3).toString('hex')}-`;
const vm = `${prefix}g`;
const root = `/var/lib/kvm-ferry-e2e/${prefix.slice(0, -1)}`;

let browser: Browser;
let sshd: LoopbackSshd;
let app: ConsoleTestApp;

beforeAll(async () => {
  requireRealLibvirt();
  for (const d of ['images', 'iso', 'data']) mkdirSync(join(root, d), { recursive: true });
  const disk = join(root, 'images', `${vm}.qcow2`);
  copyFileSync(join(GUEST_DIR, 'guest.qcow2'), disk);
  execFileSync('virt-install', [
    '--connect', 'qemu:///system', '--name', vm, '--virt-type', 'qemu', '--vcpus', '1', '--memory', '128', '--osinfo', 'generic',
    '--import', '--disk', `path=${disk},format=qcow2,bus=virtio`, '--network', 'none', '--graphics', 'vnc,listen=127.0.0.1', '--noautoconsole',
  ], { stdio: 'pipe', timeout: 120_000 });
  sshd = await startLoopbackSshd();
  app = await startConsoleApp({ uri: 'qemu:///system', imageDir: join(root, 'images'), isoDir: join(root, 'iso'), dataDir: join(root, 'data') }, {
    virtType: 'qemu',
    peers: [{ name: 'beta', sshHost: '127.0.0.1', sshPort: sshd.port, sshUser: 'root', sshKeyFile: sshd.clientKey, hostKey: sshd.hostKey, dataAddress: '127.0.0.1' }],
  });
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  sshd?.stop();
  removeDomains(prefix);
  removePoolsUnder(root);
  rmSync(root, { recursive: true, force: true });
});

async function openConsole(path: string): Promise<{ page: Page; errors: string[]; sent: Buffer[] }> {
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  // What the page sends on its websocket, as the VNC server receives it.
  const sent: Buffer[] = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => sent.push(typeof f.payload === 'string' ? Buffer.from(f.payload) : f.payload)));
  await page.goto(app.url + path);
  return { page, errors, sent };
}

/** Pixels of the noVNC canvas that are not black: the guest's screen (BIOS and boot text) really arrived. */
async function litPixels(page: Page): Promise<number> {
  return page.evaluate(() => {
    const c = document.querySelector('#console-screen canvas') as HTMLCanvasElement | null;
    if (!c || c.width === 0 || c.height === 0) return 0;
    const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i]! + px[i + 1]! + px[i + 2]! > 60) n++;
    return n;
  });
}

async function waitForPixels(page: Page): Promise<number> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const n = await litPixels(page);
    if (n > 200 || Date.now() > deadline) return n;
    await page.waitForTimeout(250);
  }
}

const statusOf = (page: Page) => page.locator('#console-status');

describe('the console in chromium', () => {
  it('shows the screen of a running guest on this node', async () => {
    const { page, errors } = await openConsole(`/nodes/alpha/vms/${vm}/console`);
    await page.waitForSelector('#console-status[data-state="connected"]');
    await expect(statusOf(page).textContent()).resolves.toBe(`Connected to ${vm} on node alpha.`);
    expect(await waitForPixels(page)).toBeGreaterThan(200);
    await page.screenshot({ path: join(SHOTS, 'console-local.png') });
    await expect(page.locator('#console-cad').isEnabled()).resolves.toBe(true);
    await expect(page.locator('#console-reconnect').isVisible()).resolves.toBe(false);
    // Scale to window: the canvas is drawn no wider than its box.
    const fits = await page.evaluate(() => {
      const c = document.querySelector('#console-screen canvas') as HTMLCanvasElement;
      return c.getBoundingClientRect().width <= document.getElementById('console-screen')!.getBoundingClientRect().width + 1;
    });
    expect(fits).toBe(true);
    await expect(page.locator('.console-alt').textContent()).resolves.toMatch(/listens on localhost only/);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('shows the same guest through an ssh2 tunnel when it is opened as a peer\'s VM', async () => {
    const before = app.commands.length;
    const started = Date.now();
    const { page, errors } = await openConsole(`/nodes/beta/vms/${vm}/console`);
    await page.waitForSelector('#console-status[data-state="connected"]');
    process.stdout.write(`console over ssh: connected ${Date.now() - started} ms after opening the page\n`);
    expect(await waitForPixels(page)).toBeGreaterThan(200);
    await page.screenshot({ path: join(SHOTS, 'console-peer.png') });
    // The VM was found over SSH on "beta", not through the local libvirt connection.
    expect(app.commands.slice(before).map((c) => `${c.file} ${c.args.slice(2, 3).join('')}`)).toContain('beta:virsh dumpxml');
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it('says the VM stopped when it is forced off under an open console, then that it is gone once deleted', async () => {
    const { page, errors, sent } = await openConsole(`/nodes/alpha/vms/${vm}/console`);
    await page.waitForSelector('#console-status[data-state="connected"]');
    const sentBefore = sent.length;
    await page.locator('#console-cad').click();
    // The keysyms of Control_L, Alt_L and Delete went to the VNC server (as RFB or QEMU extended key events).
    const keysym = (k: number) => Buffer.from([0, 0, k >> 8, k & 0xff]);
    await expect.poll(() => [0xffe3, 0xffe9, 0xffff].every((k) => Buffer.concat(sent.slice(sentBefore)).includes(keysym(k)))).toBe(true);
    virsh('destroy', vm);
    await page.waitForSelector('#console-status[data-state="disconnected"]');
    await page.waitForFunction(() => /is not running/.test(document.getElementById('console-status')!.textContent ?? ''));
    await expect(statusOf(page).textContent()).resolves.toBe(`VM ${vm} is not running (Shut off); start it to use its console.`);
    await expect(page.locator('#console-reconnect').isVisible()).resolves.toBe(true);

    virsh('undefine', vm);
    await page.locator('#console-reconnect').click();
    await page.waitForFunction(() => /migrated away or deleted/.test(document.getElementById('console-status')!.textContent ?? ''));
    await expect(statusOf(page).textContent()).resolves.toBe(`VM ${vm} is not on node alpha: it was migrated away or deleted.`);
    await expect(page.locator('#console-moved').isVisible()).resolves.toBe(false);

    // With this node's record of a migration to beta (as the migrator writes it), the page follows the VM.
    const job = app.deps.jobsRepo.start({ kind: 'migrate', node: 'alpha', vm, user: null, params: { to: 'beta', mode: 'live' }, message: 'Migrating' });
    app.deps.jobsRepo.finish(job.id, 'ok', `VM ${vm} migrated to beta.`);
    await page.locator('#console-reconnect').click();
    await page.waitForFunction(() => /migrated to node beta/.test(document.getElementById('console-status')!.textContent ?? ''));
    await expect(statusOf(page).textContent()).resolves.toBe(`VM ${vm} is not on node alpha any more: it was migrated to node beta.`);
    await page.screenshot({ path: join(SHOTS, 'console-moved.png') });
    await Promise.all([page.waitForURL(`**/nodes/beta/vms/${vm}/console`), page.locator('#console-moved-link').click()]);
    // (Here "beta" is this same machine, where the VM was deleted: the peer says so, decided over SSH by listing its VMs.)
    await expect(statusOf(page).textContent()).resolves.toBe(`VM ${vm} is not on node beta: it was migrated away or deleted.`);
    await expect(statusOf(page).getAttribute('data-state')).resolves.toBe('unavailable');
    await expect(page.locator('#console-screen').isVisible()).resolves.toBe(false);
    expect(errors.filter((e) => !/Failed to load resource/.test(e))).toEqual([]);
    await page.context().close();
  });
});
