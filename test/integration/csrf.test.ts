import { afterEach, describe, expect, it } from 'vitest';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { api, fromNginx, startTestApp, type TestApp } from '../helpers/test-app.js';
import { CsrfTokens } from '../../src/web/csrf.js';

let app: TestApp | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

async function pageForm(a: TestApp, headers: Record<string, string> = {}): Promise<{ html: string; token: string }> {
  const r = await fetch(a.url + '/', { headers });
  const html = await r.text();
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error('page has no CSRF token');
  return { html, token };
}

function postForm(a: TestApp, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) {
  return fetch(a.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  });
}

const vmState = async (a: TestApp, vm: string) => (await api(a, 'GET', `/api/nodes/alpha/vms/${vm}`)).json.state as string;

describe('CSRF token on page forms', () => {
  it('puts a token into every POST form the page renders', async () => {
    app = await startTestApp(makeFixture([{ name: 'a' }, { name: 'b', state: 'shut-off' }]));
    const { html } = await pageForm(app);
    const forms = html.match(/<form\b[^>]*method="post"[^>]*>[\s\S]*?<\/form>/gi) ?? [];
    expect(forms.length).toBeGreaterThanOrEqual(5);
    for (const f of forms) expect(f, f.slice(0, 120)).toMatch(/name="_csrf" value="[0-9a-z]+\.[A-Za-z0-9_-]{43}"/);
  });

  it('accepts a form POST carrying the page token', async () => {
    const f = makeFixture([{ name: 'b', state: 'shut-off' }]);
    app = await startTestApp(f);
    const { token } = await pageForm(app);
    const r = await postForm(app, '/nodes/alpha/vms/b/start', { _csrf: token });
    expect(r.status).toBe(303);
    // The form answers once the job is started, not finished.
    await app.deps.jobs.drain();
    expect(await vmState(app, 'b')).toBe('running');
    // The secret is private to root.
    expect(statSync(join(f.dataDir, 'csrf.key')).mode & 0o777).toBe(0o600);
  });

  it('refuses a form POST without a token, with a bad token, or with another user\'s token, and changes nothing', async () => {
    app = await startTestApp(makeFixture([{ name: 'a' }]));
    const { token: aliceToken } = await pageForm(app, fromNginx(app, 'alice'));
    const before = app.commands.length;
    const tries = [
      await postForm(app, '/nodes/alpha/vms/a/poweroff', {}),
      await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: 'x' }),
      await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: aliceToken.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) }),
      await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: aliceToken }, fromNginx(app, 'mallory')),
    ];
    for (const r of tries) {
      expect(r.status).toBe(403);
      expect(await r.text()).toMatch(/reload the page/);
    }
    expect(await vmState(app, 'a')).toBe('running');
    expect(app.commands.slice(before)).toEqual([]);
    const ok = await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: aliceToken }, fromNginx(app, 'alice'));
    expect(ok.status).toBe(303);
  });

  it('refuses a cross-site form POST even with a valid token (cached basic-auth credentials)', async () => {
    app = await startTestApp(makeFixture([{ name: 'a' }]));
    const { token } = await pageForm(app);
    const r1 = await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: token }, { origin: 'https://evil.example' });
    const r2 = await postForm(app, '/nodes/alpha/vms/a/poweroff', { _csrf: token }, { 'sec-fetch-site': 'cross-site' });
    expect([r1.status, r2.status]).toEqual([403, 403]);
    expect(await vmState(app, 'a')).toBe('running');
  });
});

describe('CsrfTokens', () => {
  it('expires tokens after 12 hours and refuses ones from the future', () => {
    let now = 1_700_000_000_000;
    const t = new CsrfTokens(Buffer.alloc(32, 7), () => now);
    const tok = t.issue('root');
    expect(t.verify(tok, 'root')).toBe(true);
    expect(t.verify(tok, null)).toBe(false);
    now += 12 * 3600_000 + 1;
    expect(t.verify(tok, 'root')).toBe(false);
    now -= 13 * 3600_000;
    expect(t.verify(tok, 'root')).toBe(false);
    expect(new CsrfTokens(Buffer.alloc(32, 8), () => now).verify(t.issue('root'), 'root')).toBe(false);
  });
});
