import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { makeFixture } from '../helpers/fixture.js';
import { parseConfig } from '../../src/config.js';
import { compose, type Composed } from '../../src/compose.js';
import { createApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';

let server: Server | null = null;
let deps: Composed | null = null;
afterEach(async () => {
  if (server) await new Promise((r) => server!.close(r));
  await deps?.close();
  server = null;
  deps = null;
});

/** The real app with a debug-level logger whose every line the test keeps. */
async function appWithLog(f: ReturnType<typeof makeFixture>) {
  const lines: string[] = [];
  const config = parseConfig({ nodeName: 'alpha', libvirtUri: f.uri, dataDir: f.dataDir, imageDir: f.imageDir, isoDir: f.isoDir, vmNetwork: 'none', serialLogDir: 'none' });
  deps = compose(config, createLogger({ level: 'debug', write: (l) => lines.push(l) }));
  const s = createApp(deps).listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  server = s;
  return { port: (s.address() as AddressInfo).port, lines };
}

/** One HTTP request from a chosen local address (127.0.0.2 is loopback-routed but not the proxy's 127.0.0.1). */
function from(localAddress: string, port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, localAddress, headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('proxy headers', () => {
  it('takes X-Remote-User and X-Forwarded-Host from 127.0.0.1 (nginx) only', async () => {
    const { port } = await appWithLog(makeFixture([{ name: 'kfdp-a', state: 'shut-off' }, { name: 'kfdp-b', state: 'shut-off' }]));
    const trusted = await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/start?wait=5', { 'x-remote-user': 'admin' });
    const other = await from('127.0.0.2', port, 'POST', '/api/nodes/alpha/vms/kfdp-b/start?wait=5', { 'x-remote-user': 'admin' });
    expect(JSON.parse(trusted.text).job.user).toBe('admin');
    expect(JSON.parse(other.text).job.user).toBeNull();
    // A forged X-Forwarded-Host cannot make a foreign Origin look same-site unless it comes from the proxy.
    const forged = await from('127.0.0.2', port, 'POST', '/api/nodes/alpha/vms/kfdp-a/poweroff', { origin: 'https://evil.example', 'x-forwarded-host': 'evil.example' });
    expect(forged.status).toBe(403);
  });
});

describe('logs', () => {
  it('never contain credentials, form tokens or the token secret, even at debug level', async () => {
    const f = makeFixture([{ name: 'kfdp-a' }]);
    const { port, lines } = await appWithLog(f);
    const creds = Buffer.from('admin:hunter2-secret').toString('base64');
    const page = await from('127.0.0.1', port, 'GET', '/', { authorization: `Basic ${creds}`, 'x-remote-user': 'admin' });
    const token = /name="_csrf" value="([^"]+)"/.exec(page.text)![1]!;
    await from('127.0.0.1', port, 'POST', '/nodes/alpha/vms/kfdp-a/poweroff', { authorization: `Basic ${creds}`, 'x-remote-user': 'admin', 'content-type': 'application/x-www-form-urlencoded' }, `_csrf=${token}`);
    await from('127.0.0.1', port, 'POST', '/nodes/alpha/vms/kfdp-a/start', { authorization: `Basic ${creds}`, 'content-type': 'application/x-www-form-urlencoded' }, `_csrf=${token}x`);
    await from('127.0.0.1', port, 'POST', '/api/nodes/alpha/vms', { authorization: `Basic ${creds}`, 'content-type': 'application/json' }, '{"name":');
    await deps!.jobs.drain();
    const log = lines.join('\n');
    expect(lines.length).toBeGreaterThan(0);
    const secret = readFileSync(join(f.dataDir, 'csrf.key'));
    for (const s of [creds, 'hunter2', token, secret.toString('base64'), secret.toString('hex'), 'authorization', 'Authorization']) {
      expect(log, s).not.toContain(s);
    }
  });
});
