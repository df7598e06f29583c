import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { openStatsDatabase } from '../../src/adapters/db/stats-db.js';
import { StatsWriter } from '../../src/adapters/db/stats-writer.js';
import type { Db } from '../../src/adapters/db/database.js';

/** The VM page's uPlot charts in Debian's chromium, under the app's CSP (no inline scripts). */
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = '/tmp/kvm-ferry-shots';
let browser: Browser;
let app: TestApp;
let db: Db;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: the browser tests need Debian's chromium package. Run scripts/install-pkgs.sh --test (as root), then rerun.`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  mkdirSync(SHOTS, { recursive: true });
  const f = makeFixture([{ name: 'kfst-chart', vcpus: 2, memoryMiB: 1024 }]);
  app = await startTestApp(f);
  db = openStatsDatabase(f.dataDir);
  // 26 hours of history on the real writer's clock: raw rows for the last day, minute and hour rollups.
  const w = new StatsWriter(db, app.config.stats);
  const now = Math.floor(Date.now() / 1000);
  for (let ts = now - 26 * 3600; ts <= now; ts += 60) {
    w.record([{ name: 'kfst-chart', uuid: null, ts, cpuPct: 50 + 40 * Math.sin(ts / 3600), ramMiB: 600 + (ts % 3600) / 36, ramKind: 'rss',
      io: { diskRdBytes: 4096, diskWrBytes: 65536 + (ts % 600) * 100, diskRdOps: 1, diskWrOps: 16, netInBytes: 2000, netOutBytes: 500, netInPkts: 2, netOutPkts: 1 } }], ts);
    w.maintain(ts);
  }
});

afterAll(async () => {
  db?.close();
  await app?.close();
  await browser?.close();
});

describe('VM statistics page in a browser', () => {
  it('replaces the server SVG with interactive uPlot charts and switches ranges without reloading', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(`${app.url}/nodes/alpha/vms/kfst-chart?range=1h`);
    await page.waitForSelector('#chart-cpu .uplot canvas');
    await page.waitForSelector('#vm-stats[data-loaded-range="1h"]');
    expect(await page.locator('#chart-ram .uplot canvas').count()).toBe(1);
    expect(await page.locator('#chart-disk .uplot canvas').count()).toBe(1);
    expect(await page.locator('#chart-net .uplot canvas').count()).toBe(1);
    expect(Number(await page.locator('.point-count').textContent())).toBeGreaterThan(50);

    await page.click('.ranges a[data-range="24h"]');
    await page.waitForSelector('#vm-stats[data-loaded-range="24h"]');
    expect(page.url()).toMatch(/\?range=24h$/);
    expect(Number(await page.locator('.point-count').textContent())).toBeGreaterThan(1000);
    await page.click('.ranges a[data-range="30d"]');
    await page.waitForSelector('#vm-stats[data-loaded-range="30d"]');
    expect(Number(await page.locator('.point-count').textContent())).toBeGreaterThanOrEqual(25);
    await page.screenshot({ path: `${SHOTS}/stats-vm-page.png`, fullPage: true });
    expect(errors).toEqual([]);
    await context.close();
  });

  it('shows the server-drawn charts and the range links without JavaScript', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(`${app.url}/nodes/alpha/vms/kfst-chart?range=24h`);
    expect((await page.locator('#chart-cpu svg path').last().getAttribute('d'))?.slice(0, 40)).toMatch(/^M[\d.]+,[\d.]+L/);
    // Disk and network drawn on the server too, with the latest figures labelled in bytes/s.
    expect((await page.locator('#chart-disk svg path').last().getAttribute('d'))?.slice(0, 40)).toMatch(/^M[\d.]+,[\d.]+L/);
    expect((await page.locator('#chart-net svg path').last().getAttribute('d'))?.slice(0, 40)).toMatch(/^M[\d.]+,[\d.]+L/);
    expect(await page.locator('.net-in').textContent()).toBe('2.0 KiB/s'); // 2000 B/s in binary units
    await page.click('.ranges a[data-range="7d"]');
    expect(page.url()).toMatch(/\?range=7d$/);
    expect(await page.locator('.ranges a.btn-go').textContent()).toBe('7d');
    await context.close();
  });

  it('the VM list row carries sparklines that link to the VM page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(app.url);
    const row = page.locator('tr.vm[data-vm="kfst-chart"]');
    expect(await row.locator('svg.spark-cpu path').getAttribute('d')).toMatch(/^M/);
    await row.locator('a', { hasText: 'kfst-chart' }).click();
    await page.waitForURL(/\/nodes\/alpha\/vms\/kfst-chart$/);
    await context.close();
  });
});
