import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { SITE_TEMPLATE, startNginx, type TestNginx } from '../helpers/nginx.js';

// The TLS lines the site template documents, applied as an admin would (read from the
// template's own comments, only the certificate paths swapped for a throw-away one).
let app: TestApp;
let nginx: TestNginx;

/** Directive lines ("#     …;") of the comment paragraph that starts with `heading`. */
function documented(heading: string): string[] {
  const lines = readFileSync(SITE_TEMPLATE, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(heading));
  if (i < 0) throw new Error(`the template no longer documents "${heading}"`);
  const out: string[] = [];
  for (const l of lines.slice(i + 1)) {
    const m = /^#     (\S.*;)$/.exec(l);
    if (!m) break;
    out.push(m[1]!);
  }
  return out;
}

beforeAll(async () => {
  app = await startTestApp(makeFixture([{ name: 'kfdp-a' }]));
  const dir = mkdtempSync(join(tmpdir(), 'kvm-ferry-nginx-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', join(dir, 'privkey.pem'), '-out', join(dir, 'fullchain.pem')], { stdio: 'ignore' });
  const main = documented('in the kvm-ferry server').map((l) => l.replace('/etc/ssl/kvm-ferry', dir));
  const dflt = documented('in the default server');
  expect(main.join('\n')).toMatch(/ssl_certificate .*\n.*ssl_certificate_key/);
  expect(dflt).toEqual(['ssl_reject_handshake on;']);
  nginx = await startNginx({
    dir,
    dataDir: app.config.dataDir,
    upstreamPort: Number(new URL(app.url).port),
    users: { admin: 'tls password' },
    listenSuffix: ' ssl',
    edit: (site) => site
      .replace(/(server_name _;\n)/, `$1    ${dflt.join('\n    ')}\n`)
      .replace(/(server_name 127\.0\.0\.1 localhost;\n)/, `$1    ${main.join('\n    ')}\n`),
  });
});

afterAll(async () => {
  await nginx?.stop();
  await app?.close();
});

function get(servername: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown> } | { error: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: nginx.port, path, servername, rejectUnauthorized: false, headers: { host: servername, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: `${e.code} ${e.message}` }));
    req.end();
  });
}

describe('the nginx site with the documented TLS lines', () => {
  it('serves HTTPS with basic auth and HSTS, and refuses the handshake for unknown names', async () => {
    const auth = { authorization: 'Basic ' + Buffer.from('admin:tls password').toString('base64') };
    expect(await get('localhost', '/')).toMatchObject({ status: 401 });
    const ok = await get('localhost', '/api/nodes/alpha/vms', auth);
    expect(ok).toMatchObject({ status: 200, headers: { 'strict-transport-security': 'max-age=31536000' } });
    const other = await get('evil.example', '/', auth);
    expect(other).toHaveProperty('error');
    expect((other as { error: string }).error).toMatch(/EPROTO.*unrecognized name/i);
  });
});
