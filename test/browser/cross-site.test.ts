import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { startNginx, type TestNginx } from '../helpers/nginx.js';

/**
 * The attack the CSRF defences exist for, in a real browser: the admin is logged in to
 * kvm-ferry (basic auth through the real nginx site, credentials cached by chromium)
 * and opens another site whose page submits a form and fires a fetch at kvm-ferry.
 * 127.0.0.1 (kvm-ferry) and localhost (the other site) are different sites to chromium.
 */
const CHROMIUM = '/usr/bin/chromium';
let browser: Browser;
let app: TestApp;
let nginx: TestNginx;
let evil: Server;
let evilUrl = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-pkgs.sh --test (as root), then rerun.`);
  app = await startTestApp(makeFixture([{ name: 'kfdp-a' }, { name: 'kfdp-b' }]));
  nginx = await startNginx({ dataDir: app.config.dataDir, upstreamPort: Number(new URL(app.url).port), users: { admin: 'cross site pw' } });
  const target = nginx.url;
  evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html');
    if (req.url === '/form') {
      res.end(`<!doctype html><form method="post" action="${target}/nodes/alpha/vms/kfdp-a/poweroff"><input name="x" value="1"></form><script>document.forms[0].submit()</script>`);
    } else {
      res.end(`<!doctype html><p id="done">…</p><script>
        fetch('${target}/api/nodes/alpha/vms/kfdp-b/poweroff', { method: 'POST', mode: 'no-cors', credentials: 'include' })
          .finally(() => { document.getElementById('done').textContent = 'sent'; });
      </script>`);
    }
  });
  await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
  evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => (evil ? evil.close(r) : r(null)));
  await nginx?.stop();
  await app?.close();
});

const state = async (vm: string) => ((await (await fetch(`${app.url}/api/nodes/alpha/vms/${vm}`)).json()) as { state: string }).state;

describe('a logged-in admin visiting another site', () => {
  it('cannot be made to change anything by a cross-site form or fetch, though the browser sends the password', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: 'cross site pw' } });
    const page = await context.newPage();
    const own = await page.goto(nginx.url + '/');
    expect(own?.status()).toBe(200);
    expect(await page.locator('input[name="_csrf"]').count()).toBeGreaterThan(0);

    const post = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().endsWith('/poweroff'));
    await page.goto(evilUrl + '/form');
    const refused = await post;
    expect(refused.status()).toBe(403);
    // nginx accepted the cached password (its log names the user): only the app's checks stopped it.
    const access = readFileSync(join(nginx.dir, 'logs/access.log'), 'utf8');
    expect(access).toMatch(/ - admin \[[^\]]+\] "POST \/nodes\/alpha\/vms\/kfdp-a\/poweroff HTTP\/1\.1" 403 /);
    expect(await page.textContent('body')).toMatch(/Refused a cross-site request/);

    await page.goto(evilUrl + '/fetch');
    await page.waitForFunction(() => document.getElementById('done')?.textContent === 'sent');
    // chromium may or may not attach the cached password to a no-cors fetch: nginx (401) or the app (403) refuses it.
    expect(readFileSync(join(nginx.dir, 'logs/access.log'), 'utf8')).toMatch(/ - (admin|-) \[[^\]]+\] "POST \/api\/nodes\/alpha\/vms\/kfdp-b\/poweroff HTTP\/1\.1" (401|403) /);
    expect(await state('kfdp-a')).toBe('running');
    expect(await state('kfdp-b')).toBe('running');
    expect(app.deps.jobsRepo.recent(5)).toEqual([]);
    await context.close();
  });
});
