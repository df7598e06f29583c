import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import { makeFixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';
import { freeLoopbackPort, startNginx, type TestNginx } from '../helpers/nginx.js';

// A real nginx (own prefix, loopback port) running the shipped site template, in front
// of a real manager on a test-driver fixture, and of a real `ws` server standing in for
// the console's websocket endpoint (the console itself is another issue's work).
let app: TestApp;
let nginx: TestNginx;
let wss: WebSocketServer;
const upgrades: IncomingHttpHeaders[] = [];

const ADMIN = 'Basic ' + Buffer.from('admin:s3cret pass').toString('base64');
const ALICE = 'Basic ' + Buffer.from('alice:wonder').toString('base64');

beforeAll(async () => {
  app = await startTestApp(makeFixture([{ name: 'kfdp-run' }, { name: 'kfdp-off', state: 'shut-off' }, { name: 'kfdp-hold' }]));
  const wsPort = await freeLoopbackPort();
  wss = new WebSocketServer({ host: '127.0.0.1', port: wsPort, path: '/console/ws' });
  wss.on('connection', (sock, req) => {
    upgrades.push(req.headers);
    sock.on('message', (m) => sock.send(`echo:${m.toString()}`));
  });
  nginx = await startNginx({ dataDir: app.config.dataDir, upstreamPort: Number(new URL(app.url).port), consolePort: wsPort, users: { admin: 's3cret pass', alice: 'wonder' } });
});

afterAll(async () => {
  await nginx?.stop();
  await new Promise((r) => (wss ? wss.close(r) : r(null)));
  await app?.close();
});

const via = (path: string, init: RequestInit = {}) => fetch(nginx.url + path, { redirect: 'manual', ...init });
const auth = (h: Record<string, string> = {}, who = ADMIN) => ({ authorization: who, ...h });
const vmState = async (vm: string) => ((await (await via(`/api/nodes/alpha/vms/${vm}`, { headers: auth() })).json()) as { state: string }).state;

async function pageToken(who = ADMIN): Promise<string> {
  const html = await (await via('/', { headers: auth({}, who) })).text();
  const t = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!t) throw new Error('no CSRF token on the page');
  return t;
}

const form = (fields: Record<string, string>) => ({ 'content-type': 'application/x-www-form-urlencoded', body: new URLSearchParams(fields).toString() });

describe('nginx site in front of the manager', () => {
  it('answers 401 without or with wrong credentials, 200 with them, and keeps the app\'s security headers', async () => {
    expect((await via('/')).status).toBe(401);
    expect((await via('/api/nodes')).status).toBe(401);
    expect((await via('/', { headers: { authorization: 'Basic ' + Buffer.from('admin:wrong').toString('base64') } })).status).toBe(401);
    const ok = await via('/', { headers: auth() });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    expect(ok.headers.get('server')).toBe('nginx');
  });

  it('closes the connection for a Host name that is not the site\'s', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port: nginx.port, path: '/', headers: { host: 'evil.example', authorization: ADMIN } }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      req.end();
    });
    expect(outcome).toMatch(/ECONNRESET|socket hang up/);
  });

  it('passes the authenticated user to the app, not one the client claims', async () => {
    const r = await via('/api/nodes/alpha/vms/kfdp-off/start?wait=10', { method: 'POST', headers: auth({ 'x-remote-user': 'root' }) });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { job: { user: string } }).job.user).toBe('admin');
  });

  it('refuses cross-site state changes that carry cached credentials, and form POSTs without the page token', async () => {
    const token = await pageToken();
    const tries = [
      await via('/api/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ origin: 'https://evil.example' }) }),
      await via('/api/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ 'sec-fetch-site': 'cross-site' }) }),
      await via('/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' }), body: `_csrf=${token}` }),
      await via('/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ 'content-type': 'application/x-www-form-urlencoded' }), body: '' }),
      await via('/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ 'content-type': 'application/x-www-form-urlencoded' }, ALICE), body: `_csrf=${token}` }),
    ];
    expect(tries.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    expect(await vmState('kfdp-run')).toBe('running');
    const { body, ...h } = form({ _csrf: token });
    const same = await via('/nodes/alpha/vms/kfdp-run/poweroff', { method: 'POST', headers: auth({ ...h, origin: nginx.url, 'sec-fetch-site': 'same-origin' }), body });
    expect(same.status).toBe(303);
  });

  it('refuses a body over 64 KiB at nginx', async () => {
    const r = await via('/api/nodes/alpha/vms', { method: 'POST', headers: auth({ 'content-type': 'application/json' }), body: JSON.stringify({ name: 'x'.repeat(70_000) }) });
    expect(r.status).toBe(413);
  });

  it('streams job events unbuffered: a progress event arrives while the job still runs', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let step!: (n: number) => void;
    const job = app.deps.jobs.submit({ kind: 'shutdown', node: 'alpha', vm: 'kfdp-hold', user: null, params: {}, message: 'held' }, async (ctx) => {
      step = (n) => ctx.progress({ n }, `step ${n}`);
      await held;
      return { message: 'done' };
    });
    const res = await via(`/api/jobs/${job.id}/events`, { headers: auth() });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    const nextEvent = async (): Promise<{ event: string; data: { state: string; progress: { n: number } | null } }> => {
      const deadline = Date.now() + 5000;
      while (!buf.includes('\n\n')) {
        if (Date.now() > deadline) throw new Error('no event within 5 s: nginx buffers the stream');
        const { value, done } = await reader.read();
        if (done) throw new Error('stream ended');
        buf += dec.decode(value, { stream: true });
      }
      const i = buf.indexOf('\n\n');
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) return nextEvent();
      return { event: /^event: (.*)$/m.exec(block)![1]!, data: JSON.parse(/^data: (.*)$/m.exec(block)![1]!) };
    };
    expect((await nextEvent()).data.state).toBe('running');
    step(1);
    const p = await nextEvent();
    expect(p).toMatchObject({ event: 'progress', data: { state: 'running', progress: { n: 1 } } });
    expect(app.deps.jobsRepo.get(job.id)!.state).toBe('running');
    release();
    expect((await nextEvent()).event).toBe('end');
    await reader.cancel();
  });

  it('upgrades the console websocket through nginx with the user set and no credentials passed on', async () => {
    const sock = new WebSocket(`ws://127.0.0.1:${nginx.port}/console/ws?vm=kfdp-run`, { headers: { authorization: ADMIN, 'x-remote-user': 'root' } });
    const reply = await new Promise<string>((resolve, reject) => {
      sock.on('open', () => sock.send('hello'));
      sock.on('message', (m) => resolve(m.toString()));
      sock.on('error', reject);
    });
    sock.close();
    expect(reply).toBe('echo:hello');
    const h = upgrades.at(-1)!;
    expect(h.upgrade).toBe('websocket');
    expect(h['x-remote-user']).toBe('admin');
    expect(h.authorization).toBeUndefined();

    const anon = new WebSocket(`ws://127.0.0.1:${nginx.port}/console/ws`);
    const status = await new Promise<number>((resolve) => {
      anon.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      anon.on('open', () => resolve(101));
      anon.on('error', () => resolve(-1));
    });
    expect(status).toBe(401);
  });
});
