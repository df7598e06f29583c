import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';
import { decodeToken } from '../../src/domain/join/token.js';

/** The JSON API and the Nodes page over the same service as the CLI, on a real config file. */
let app: TestApp;
let keysFile: string;
beforeAll(async () => {
  const f = makeFixture();
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(f.dataDir, 'host_key')]);
  keysFile = join(f.dataDir, 'authorized_keys');
  const join_ = { authorizedKeysFile: keysFile, hostKeyFile: join(f.dataDir, 'host_key.pub'), addresses: ['192.0.2.10'] };
  app = await startTestApp(f, { join: join_ });
  const file = join(f.dataDir, 'config.yaml');
  writeFileSync(file, JSON.stringify({ nodeName: 'alpha', libvirtUri: f.uri, dataDir: f.dataDir, imageDir: f.imageDir, isoDir: f.isoDir, vmNetwork: 'none', serialLogDir: 'none', migrationTlsDir: join(f.dataDir, 'pki-migrate'), join: join_ }));
  app.config.source = file;
});
afterAll(() => app?.close());

describe('POST /api/node/invite|join|remove and /nodes', () => {
  it('makes an invite: a decodable token for this node and its bootstrap key line', async () => {
    const r = await api(app, 'POST', '/api/node/invite', { ttl: '10m' });
    expect(r.status).toBe(201);
    const t = decodeToken(r.json.token);
    expect(t).toMatchObject({ ok: true, token: { node: 'alpha', addresses: ['192.0.2.10'], managerPort: 8080 } });
    expect(Date.parse(r.json.expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(readFileSync(keysFile, 'utf8')).toMatch(/kvm-ferry-invite:/);
  });

  it('refuses bad input with one sentence', async () => {
    expect((await api(app, 'POST', '/api/node/invite', { ttl: '2d' })).json.error.message).toMatch(/lifetime must look like/);
    const inv = (await api(app, 'POST', '/api/node/invite', {})).json.token as string;
    const trunc = await api(app, 'POST', '/api/node/join', { token: inv.slice(0, 50) });
    expect(trunc.status).toBe(400);
    expect(trunc.json.error.message).toMatch(/incomplete/);
    expect((await api(app, 'POST', '/api/node/join', { token: inv })).json.error.message).toMatch(/made by this node/);
    expect((await api(app, 'POST', '/api/node/remove', { name: 'nobody' })).json.error.message).toBe('nobody is not a peer of this node.');
  });

  it('renders the Nodes page with the Add node and Join panels, linked from the header', async () => {
    const res = await fetch(`${app.url}/nodes`);
    const html = await res.text();
    expect(res.status).toBe(200);
    expect(html).toContain('id="add-node"');
    expect(html).toContain('id="join-token"');
    expect(html).toContain('<a href="/nodes">Nodes</a>');
  });

  it('makes an invite from the page form (CSRF-checked) and shows the token with its expiry and a copy button', async () => {
    const page = await (await fetch(`${app.url}/nodes`)).text();
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page)![1]!;
    const post = (fields: Record<string, string>) => fetch(`${app.url}/nodes/invite`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: app.url }, body: new URLSearchParams(fields).toString() });
    const ok = await post({ _csrf: csrf, ttl: '15m', address: '' });
    const html = await ok.text();
    expect(ok.status, html.slice(0, 500)).toBe(200);
    expect(html).toMatch(/<textarea id="invite-token" readonly[^>]*>kf1\./);
    expect(html).toContain('id="copy-token"');
    expect(html).toMatch(/<time id="invite-expiry" datetime="\d{4}-/);
    expect((await post({ ttl: '15m' })).status).toBe(403);
  });
});
