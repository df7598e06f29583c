import { it } from 'vitest';
import { chromium } from 'playwright-core';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp } from '../helpers/test-app.js';
it('dbg', async () => {
  const f = makeFixture([{ name: 'busy' }]);
  const app = await startTestApp(f);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  app.deps.jobs.submit({ kind: 'shutdown', node: 'alpha', vm: 'busy', user: null, params: {}, message: 'holding' }, async () => { await held; return { message: 'released' }; });
  const b = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
  for (const path of ['/?job=1', '/?job=1#job', '/']) {
    const page = await b.newPage();
    let n = 0;
    page.on('response', r => { if (!r.url().includes('static')) n++; });
    await page.goto(app.url + path);
    await page.waitForTimeout(5000);
    console.log(path, 'doc loads', n, (await page.content()).match(/<meta http-equiv[^>]*>/)?.[0]);
    await page.close();
  }
  release();
  await b.close(); await app.close();
}, 60000);
