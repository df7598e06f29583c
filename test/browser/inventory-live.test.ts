import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../helpers/browser.js';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';

/** The VM list follows /events in a real browser: a state change made elsewhere shows without a reload. */
let browser: Browser;
let app: TestApp;

beforeAll(async () => {
  browser = await launchChromium();
  app = await startTestApp(makeFixture([{ name: 'web-a', state: 'shut-off', disks: [{ path: '/var/lib/libvirt/images/web-a.qcow2' }] }]), { inventoryRefreshSec: 60 });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.close();
});

describe('the VM page with JavaScript', () => {
  it("updates a VM's state from the SSE stream, without reloading, and counts its node's age", async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${app.url}/`);
      const row = page.locator('tr.vm[data-vm="web-a"]');
      await expect.poll(() => row.getAttribute('data-state')).toBe('shut-off');
      // A marker that a reload would wipe.
      await page.evaluate(() => ((window as unknown as { kfMarker: number }).kfMarker = 42));
      await expect.poll(() => app.deps.inventoryEvents.size, { timeout: 10_000 }).toBe(1);
      // Started by another client (the API), not by this page.
      const r = await api(app, 'POST', '/api/nodes/alpha/vms/web-a/start?wait=20', {});
      expect(r.json.job.state).toBe('ok');
      await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('running');
      await expect.poll(() => row.locator('td[data-label="State"] .badge').textContent(), { timeout: 10_000 }).toBe('Running');
      // The actions are redrawn for the new state (from a fresh render of the cache).
      await expect.poll(() => row.locator('button', { hasText: 'Force off' }).count(), { timeout: 10_000 }).toBe(1);
      expect(await page.evaluate(() => (window as unknown as { kfMarker?: number }).kfMarker)).toBe(42);
      await expect.poll(() => page.locator('#node-alpha .node-age').textContent(), { timeout: 5_000 }).toMatch(/^as of \d+ s ago$/);
      expect(errors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 60_000);
});
