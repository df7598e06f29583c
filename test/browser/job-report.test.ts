import { afterAll, beforeAll, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { makeFixture, type Fixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

/**
 * The job page as a report in a real browser: a migration-shaped job held open on the
 * runner (test driver, no lab) reports progress the way the live copy does; headline and
 * bar must show one percent at every step, and the step timeline appears when it ends.
 */

let browser: Browser;
let f: Fixture;
let app: TestApp;

beforeAll(async () => {
  browser = await launchChromium();
  f = makeFixture([{ name: 'web1', state: 'running' }]);
  app = await startTestApp(f);
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  rmSync(f.dir, { recursive: true, force: true });
});

it('shows one percent in headline and bar while a migration runs, then the step timeline', async () => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let report!: (p: Record<string, unknown>, m?: string) => void;
  const ready = new Promise<void>((r) => {
    app.deps.jobs.submit({ kind: 'migrate', node: 'alpha', vm: 'web1', user: null, params: { to: 'beta', checks: [{ id: 'cpu', ok: true, message: 'The CPU model is the same on beta.' }] }, message: 'Migrating web1 to beta…' }, async (jc) => {
      report = (p, m) => jc.progress(p, m);
      jc.progress({ step: 'preflight', percent: 0 });
      r();
      await held;
      return { message: 'VM web1 migrated to beta in 3.0 s, 41 ms downtime.', result: { from: 'alpha', to: 'beta', mode: 'live', durationMs: 3000, downtimeMs: 41, bytesMoved: 3 * 1024 ** 3, sourceRemoved: ['/x.qcow2'], convergence: { policy: 'safe', bandwidthMiBps: 0, iterations: 3, maxThrottlePercent: 20, postcopy: false } } };
    });
  });
  await ready;
  const job = app.deps.jobsRepo.recent(1)[0]!;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(`${app.url}/nodes/alpha/jobs/${job.id}`);
    const headline = page.locator('#headline .pct');
    const bar = page.locator('.progress progress');
    const message = page.locator('#job .message');
    const same = async (want: number) => {
      await expect.poll(async () => headline.innerText(), { timeout: 15_000 }).toBe(`${want} %`);
      expect(Number(await bar.getAttribute('value') ?? await bar.evaluate((b) => String((b as HTMLProgressElement).value)))).toBe(want);
      expect(await bar.evaluate((b) => (b as HTMLProgressElement).value)).toBe(want);
    };
    // The live copy's sample and its sentence come from one view: 11.3 here, never 87.1 elsewhere.
    report({ step: 'disks', percent: 0 }, 'Preparing the disks of web1 on beta…');
    report({ step: 'copy', percent: 11.3, throughputBps: 50 * 1024 ** 2, remainingBytes: 2 * 1024 ** 3, phase: 'disk-copy' }, 'Migrating web1 to beta: 11.3% (copying disks)');
    await same(11.3);
    expect(await message.innerText()).toContain('11.3%');
    report({ step: 'copy', percent: 87.1, throughputBps: 60 * 1024 ** 2, remainingBytes: 300 * 1024 ** 2, phase: 'memory', memoryPass: 2 }, 'Migrating web1 to beta: 87.1% (memory pass 2)');
    await same(87.1);
    expect(await message.innerText()).toContain('87.1%');
    // The live timeline already lists the steps so far.
    await expect.poll(async () => page.locator('#timeline tr.step').count()).toBe(3);
    report({ step: 'verify', phase: 'verifying', percent: 100 }, 'Verifying web1 on beta…');
    await same(100);
    report({ step: 'cleanup', percent: 100 }, 'web1 verified on beta; removing its moved files from alpha…');
    report({ step: 'done', percent: 100 });
    release();
    // The page reloads on the end event: the server-rendered report.
    await page.waitForFunction(() => document.querySelector('#job')?.getAttribute('data-job-state') === 'ok', undefined, { timeout: 20_000 });
    const steps = await page.locator('#timeline tr.step').evaluateAll((rows) => rows.map((r) => [(r as HTMLElement).dataset.step, r.classList.contains('step-done')]));
    expect(steps).toEqual([['preflight', true], ['disks', true], ['copy', true], ['verify', true], ['cleanup', true]]);
    expect(await headline.innerText()).toBe('100 %');
    const words = await page.locator('#result-words').innerText();
    expect(words).toContain('web1 now runs on node beta');
    expect(words).toContain('Policy: Safe');
    expect(words).toContain('3 memory passes');
    expect(words).toContain('41 ms');
    expect(words).toContain('3.0 GiB sent');
    expect(await page.locator('.job-checks li.check-ok').innerText()).toContain('The CPU model is the same on beta.');
    // Raw JSON only behind the closed Details element.
    expect(await page.locator('details.raw').getAttribute('open')).toBeNull();
    expect(await page.locator('details.raw pre').first().isVisible()).toBe(false);
    await expect.poll(async () => page.locator('#job-chart[data-interactive="true"]').count()).toBe(1);
    expect(errors).toEqual([]);
  } finally {
    release();
    await context.close();
  }
}, 90_000);

it('renders the finished report without JavaScript', async () => {
  const job = app.deps.jobsRepo.recent(1)[0]!;
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  try {
    await page.goto(`${app.url}/nodes/alpha/jobs/${job.id}`);
    expect(await page.locator('#timeline tr.step').count()).toBe(5);
    expect(await page.locator('#timeline tr[data-step="copy"] td').nth(3).innerText()).toMatch(/\d/);
    expect(await page.locator('.job-checks li').count()).toBe(1);
    expect(await page.locator('#headline .pct').innerText()).toBe('100 %');
  } finally {
    await context.close();
  }
}, 30_000);
