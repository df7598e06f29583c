import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { makeFixture, type Fixture, type FixtureDomain } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * The server-rendered page in a real browser: Debian's chromium driven by
 * playwright-core (no downloaded browser), against a real manager on a private
 * libvirt test-driver world.
 */

const SHOTS = '/tmp/kvm-ferry-shots';
const JOB_WAIT_MS = 30_000;

let browser: Browser;
let app: TestApp | null = null;
let context: BrowserContext | null = null;

beforeAll(async () => {
  browser = await launchChromium();
  mkdirSync(SHOTS, { recursive: true });
});

afterAll(async () => {
  await browser?.close();
});

afterEach(async () => {
  await context?.close();
  context = null;
  await app?.close();
  app = null;
});

interface Opened {
  page: Page;
  /** pageerror events and console errors, in order. */
  errors: string[];
  /** Texts of the confirm() dialogs the page raised (all accepted). */
  dialogs: string[];
}

async function openPage(viewport = { width: 1280, height: 900 }, extra: Parameters<Browser['newContext']>[0] = {}): Promise<Opened> {
  context = await browser.newContext({ viewport, ...extra });
  const page = await context.newPage();
  page.setDefaultTimeout(JOB_WAIT_MS);
  const errors: string[] = [];
  const dialogs: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
  return { page, errors, dialogs };
}

async function appWith(domains: FixtureDomain[] = [], imageDir?: string): Promise<{ app: TestApp; f: Fixture }> {
  const f = makeFixture(domains);
  const world = imageDir ? { ...f, imageDir } : f;
  app = await startTestApp(world);
  return { app, f: world };
}

/** Disk files must exist before the fixture XML names them: make them in a scratch fixture's image dir. */
function qcow2Files(names: string[], size = '2G'): { imageDir: string; paths: Record<string, string> } {
  const { imageDir } = makeFixture();
  const paths: Record<string, string> = {};
  for (const n of names) {
    paths[n] = join(imageDir, `${n}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', paths[n], size]);
  }
  return { imageDir, paths };
}

const jobOf = (page: Page): string | null => new URL(page.url()).searchParams.get('job');

/**
 * Runs `act` (a click that posts a form), waits for the redirect to `/?job=N` with a
 * new N, then for the banner to leave "running" across the page's 2 s meta refreshes.
 */
async function submitAndFinishJob(page: Page, act: () => Promise<void>): Promise<{ id: string; message: string }> {
  const before = jobOf(page);
  await Promise.all([
    page.waitForURL((u) => u.pathname === '/' && /^\d+$/.test(u.searchParams.get('job') ?? '') && u.searchParams.get('job') !== before),
    act(),
  ]);
  const banner = await page.waitForSelector('#job[data-job-state]:not([data-job-state="running"])', { timeout: JOB_WAIT_MS });
  const state = await banner.getAttribute('data-job-state');
  const message = (await banner.textContent())?.replace(/\s+/g, ' ').trim() ?? '';
  expect(state, `job banner: ${message}`).toBe('ok');
  return { id: jobOf(page)!, message };
}

const row = (page: Page, vm: string) => page.locator(`tr.vm[data-vm="${vm}"]`);

async function stateOf(page: Page, vm: string): Promise<string> {
  return ((await row(page, vm).locator('td[data-label="State"] .badge').textContent()) ?? '').trim();
}

describe('the VM page in chromium', () => {
  it('creates, starts, shuts down and deletes a VM through the forms', async () => {
    const { app, f } = await appWith();
    const { page, errors, dialogs } = await openPage();
    await page.goto(app.url + '/');
    await expect(page.locator('tr.vm').count()).resolves.toBe(0);

    const form = page.locator('#create-form');
    await form.getByLabel('Name').fill('web-01');
    await form.getByLabel('vCPUs').fill('2');
    await form.getByLabel('RAM (MiB)').fill('256');
    await form.getByLabel('nothing (empty disk)').check();
    await form.getByLabel('New disk (GiB)').fill('1');
    await form.getByLabel('After creating').selectOption({ label: 'leave it off' });
    const created = await submitAndFinishJob(page, () => form.getByRole('button', { name: 'Create VM' }).click());
    expect(created.message).toContain('VM web-01 created.');
    expect(page.url()).toMatch(/\/\?job=\d+$/);
    const disk = join(f.imageDir, 'web-01.qcow2');
    expect(existsSync(disk)).toBe(true);
    await expect(stateOf(page, 'web-01')).resolves.toBe('Shut off');
    await expect(row(page, 'web-01').locator('td[data-label="vCPUs"]').textContent()).resolves.toBe('2');
    await expect(row(page, 'web-01').locator('td[data-label="RAM"]').textContent()).resolves.toBe('256 MiB');

    await submitAndFinishJob(page, () => row(page, 'web-01').getByRole('button', { name: 'Start' }).click());
    await expect(stateOf(page, 'web-01')).resolves.toBe('Running');

    await submitAndFinishJob(page, async () => {
      const r = row(page, 'web-01');
      await r.locator('details.menu > summary', { hasText: 'Shut down' }).click();
      await r.locator('form[action$="/shutdown"]').getByRole('button', { name: 'Shut down' }).click();
    });
    await expect(stateOf(page, 'web-01')).resolves.toBe('Shut off');

    const deleted = await submitAndFinishJob(page, async () => {
      const r = row(page, 'web-01');
      await r.locator('details.menu > summary', { hasText: 'Delete…' }).click();
      await r.getByLabel('delete its disks too').check();
      await r.getByRole('button', { name: 'Delete web-01' }).click();
    });
    expect(dialogs).toEqual(['Delete VM web-01?']);
    expect(deleted.message).toContain('VM web-01 deleted with 1 disk(s).');
    await expect(row(page, 'web-01').count()).resolves.toBe(0);
    expect(existsSync(disk)).toBe(false);
    expect(errors).toEqual([]);
  });

  it('re-renders a refused create with 400, one sentence, and the values the user typed', async () => {
    const { app } = await appWith();
    const { page, errors } = await openPage();
    await page.goto(app.url + '/');
    const form = page.locator('#create-form');
    await form.getByLabel('Name').fill('bad name!');
    await form.getByLabel('vCPUs').fill('3');
    await form.getByLabel('RAM (MiB)').fill('384');
    await form.getByLabel('nothing (empty disk)').check();
    await form.getByLabel('New disk (GiB)').fill('2');
    await form.getByLabel('VNC port').fill('5999');
    await form.getByLabel('After creating').selectOption({ label: 'leave it off' });
    // The name input has an HTML pattern; switch client validation off to test the server.
    await form.evaluate((el) => ((el as HTMLFormElement).noValidate = true));
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/nodes/alpha/vms'),
      form.getByRole('button', { name: 'Create VM' }).click(),
    ]);
    expect(res.status()).toBe(400);
    await page.waitForURL((u) => u.pathname === '/nodes/alpha/vms');

    const box = page.locator('#error');
    await expect(box.count()).resolves.toBe(1);
    const sentence = ((await box.locator('strong').textContent()) ?? '').trim();
    expect(sentence).toMatch(/^[A-Z].*[.!?]$/);
    expect(sentence.split(/(?<=[.!?])\s+/)).toHaveLength(1);
    expect(sentence).toMatch(/VM name/);

    const after = page.locator('#create-form');
    await expect(after.locator('input[name=name]').inputValue()).resolves.toBe('bad name!');
    await expect(after.locator('label:has(input[name=name])').getAttribute('class')).resolves.toContain('invalid');
    await expect(after.locator('input[name=vcpus]').inputValue()).resolves.toBe('3');
    await expect(after.locator('input[name=memoryMiB]').inputValue()).resolves.toBe('384');
    await expect(after.locator('input[name=diskGiB]').inputValue()).resolves.toBe('2');
    await expect(after.locator('input[name=vncPort]').inputValue()).resolves.toBe('5999');
    await expect(after.locator('input[name=source][value=none]').isChecked()).resolves.toBe(true);
    await expect(after.locator('select[name=start]').inputValue()).resolves.toBe('false');
    expect(app.deps.jobsRepo.recent(10)).toEqual([]);
    // Chromium reports the 400 document itself as a failed resource; nothing else may fail.
    expect(errors.filter((e) => !/status of 400/.test(e))).toEqual([]);
  });

  it('stacks the VM table into cards on a phone with no horizontal scroll', async () => {
    const { imageDir, paths } = qcow2Files(['a-rather-long-vm-name-for-a-phone-screen', 'db-01']);
    const { app } = await appWith(
      [
        { name: 'a-rather-long-vm-name-for-a-phone-screen', vcpus: 2, memoryMiB: 2048, vncPort: 5901, disks: [{ path: paths['a-rather-long-vm-name-for-a-phone-screen']! }] },
        { name: 'db-01', state: 'shut-off', disks: [{ path: paths['db-01']! }] },
      ],
      imageDir,
    );
    const { page, errors } = await openPage({ width: 375, height: 740 }, { isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await page.goto(app.url + '/');
    const m = await page.evaluate(() => {
      const tr = document.querySelector('table.vms tr.vm')!;
      return {
        scrollWidth: document.documentElement.scrollWidth,
        rowDisplay: getComputedStyle(tr).display,
        headDisplay: getComputedStyle(document.querySelector('table.vms thead')!).display,
      };
    });
    expect(m.scrollWidth).toBeLessThanOrEqual(375 + 1);
    expect(m.rowDisplay).toBe('block');
    expect(m.headDisplay).toBe('none');
    const start = row(page, 'db-01').getByRole('button', { name: 'Start' });
    await start.scrollIntoViewIfNeeded();
    await expect(start.isVisible()).resolves.toBe(true);
    const b = (await start.boundingBox())!;
    expect(b.x).toBeGreaterThanOrEqual(0);
    expect(b.x + b.width).toBeLessThanOrEqual(375);
    // The menus must not push the page sideways when opened either.
    await row(page, 'a-rather-long-vm-name-for-a-phone-screen').locator('details.menu > summary', { hasText: 'Delete…' }).click();
    await expect(page.evaluate(() => document.documentElement.scrollWidth)).resolves.toBeLessThanOrEqual(375 + 1);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, 'phone.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it('loads without JS errors, with a CSP header, and with a few VMs on the desktop', async () => {
    const { imageDir, paths } = qcow2Files(['web-01', 'db-01', 'build'], '20G');
    const { app } = await appWith(
      [
        { name: 'web-01', vcpus: 2, memoryMiB: 2048, vncPort: 5901, disks: [{ path: paths['web-01']! }, { path: '/srv/iso/debian-12.iso', device: 'cdrom' }] },
        { name: 'db-01', state: 'shut-off', vcpus: 4, memoryMiB: 8192, disks: [{ path: paths['db-01']! }] },
        { name: 'build', state: 'paused', vcpus: 1, memoryMiB: 512, vncPort: 5902, disks: [{ path: paths.build! }] },
      ],
      imageDir,
    );
    const { page, errors } = await openPage();
    const res = (await page.goto(app.url + '/'))!;
    expect(res.status()).toBe(200);
    const csp = res.headers()['content-security-policy'];
    expect(csp).toBeDefined();
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'self'");
    await expect(page.locator('tr.vm').count()).resolves.toBe(3);
    // ferry.js loaded (same origin, allowed by the CSP) and the page is ready.
    await page.waitForLoadState('load');
    const js = await page.evaluate(() => [...document.scripts].map((s) => s.src));
    expect(js.some((s) => s.endsWith('/static/ferry.js'))).toBe(true);
    // Make a job so the activity table has a row in the screenshot.
    await submitAndFinishJob(page, () => row(page, 'db-01').getByRole('button', { name: 'Start' }).click());
    await page.screenshot({ path: join(SHOTS, 'desktop.png'), fullPage: true });
    expect(errors).toEqual([]);
  });
});
