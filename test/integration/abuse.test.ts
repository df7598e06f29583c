import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture, type Fixture } from '../helpers/fixture.js';
import { startTestApp, type TestApp } from '../helpers/test-app.js';

// Hundreds of hostile requests against the real app (test-driver libvirt, real SQLite,
// real virt-install/qemu-img on PATH): each must be refused with a 4xx JSON sentence,
// and no command the process adapter starts may carry any hostile value.

const PWNED = '/tmp/kfdp-abuse-pwned';

const SHELL = [';', '|', '&', '$', '(', ')', '`', '"', "'", '>', '<', '\\', '*', '?', '~', '{', '}', '!', '#'];
const HOSTILE_STRINGS: string[] = [
  ...SHELL.map((c) => `kfdp${c}x`),
  `kfdp; touch ${PWNED}`, `$(touch ${PWNED})`, `\`touch ${PWNED}\``, `kfdp && touch ${PWNED}`, `kfdp | tee ${PWNED}`,
  `kfdp\ntouch ${PWNED}`, "kfdp' OR '1'='1", 'kfdp"; DROP TABLE jobs; --',
  '--foo', '-rf', '--connect=test:///default', '-c', '--', '-', '--help', '--dry-run=false', '-kfdp',
  '../etc/passwd', '../../../../etc/shadow', '/etc/passwd', '..', '.', 'kfdp/..', 'kfdp/../../x', '%2e%2e%2fetc', '....//....//etc',
  'kfdp-ü', 'ｋｆｄｐ', 'kfdp\u202egnp.exe', 'kfdp\u200b', 'kfdp-🚢', 'кфдп', 'kfdp\u0000x', '\u0000', 'kfdp\r\nX-Injected: 1',
  'k'.repeat(64), 'k'.repeat(4096), 'k'.repeat(60_000),
  ' kfdp', 'kfdp ', '', ' ', 'kfdp.', '.kfdp', '_kfdp',
  '__proto__',
];
/** Valid VM names, so hostile only where a name is not expected (they must not reach a lookup table as keys). */
const OBJECT_KEYS = ['constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];
/** Optional fields take these as "use the default": not hostile there. */
const DEFAULTED = new Set<unknown>(['', null]);
const BOOLISH = new Set<unknown>([true, false, 'true', 'false', '1', '0', 1, 0, -0, 'on', 'off', 'yes', 'no']);
const HOSTILE_NUMBERS: unknown[] = [
  -1, 0, -0, 1.5, 0.0001, 1e3 + 0.5, 1e308, -1e308, 2 ** 53, 2 ** 63, Number.MAX_SAFE_INTEGER + 2,
  'NaN', 'Infinity', '-Infinity', '1e3', '1E3', '0x10', '0b11', '0o7', '+1', '-1', '1.0', '1,5', '١', '1_000', '9'.repeat(400),
  '', 'one', 'true', null, true, false, [], [1], {}, { valueOf: 2 }, '1; rm -rf /', '$(id)', '--1',
];
const TYPE_CONFUSION: unknown[] = [['kfdp-a'], ['a', 'b'], { name: 'kfdp-a' }, { toString: 'x' }, null, 42.5, true, [[]], { $gt: '' }];

interface Try {
  what: string;
  method: string;
  path: string;
  body?: string;
  contentType?: string;
  /** Strings that must not reach any command line. */
  markers: string[];
  refusedByHttpParser?: true;
}

const markerOf = (v: unknown): string[] => {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? '';
  // Short, ordinary fragments ("0", "-1", "") appear in legitimate argv; only distinctive values are traced.
  return s.length >= 3 && !/^[0-9.]+$/.test(s) ? [s] : [];
};

const enc = encodeURIComponent;
const VALID = { name: 'kfdp-new', vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'none', start: false };

function generate(): Try[] {
  const t: Try[] = [];
  const json = (what: string, method: string, path: string, body: unknown, markers: string[]) =>
    t.push({ what, method, path, body: JSON.stringify(body), contentType: 'application/json', markers });

  for (const s of OBJECT_KEYS) {
    for (const field of ['osVariant', 'source', 'vncPort']) json(`create ${field}=${s}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, [field]: s }, []);
    json(`iso ${s}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, source: 'iso', iso: s }, []);
    json(`migrate to ${s}`, 'POST', '/api/nodes/alpha/vms/kfdp-a/migrate', { to: s }, []);
    json(`migrate mode ${s}`, 'POST', '/api/nodes/alpha/vms/kfdp-a/migrate', { to: 'beta', mode: s }, []);
    t.push({ what: `stats range ${s}`, method: 'GET', path: `/api/nodes/alpha/vms/kfdp-a/stats?range=${s}`, markers: [] });
    t.push({ what: `delete disks ${s}`, method: 'DELETE', path: `/api/nodes/alpha/vms/kfdp-a?disks=${s}`, markers: [] });
  }
  for (const s of HOSTILE_STRINGS) {
    const m = markerOf(s);
    const pathOk = s.length < 5000; // an overlong URL is its own test, below
    const optional = !DEFAULTED.has(s);
    json(`create name ${JSON.stringify(s).slice(0, 40)}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, name: s }, m);
    if (optional) json('create osVariant', 'POST', '/api/nodes/alpha/vms', { ...VALID, osVariant: s }, m);
    json('create iso', 'POST', '/api/nodes/alpha/vms', { ...VALID, source: 'iso', iso: s }, m);
    json('create import', 'POST', '/api/nodes/alpha/vms', { ...VALID, source: 'import', image: s }, m);
    if (optional) json('create source', 'POST', '/api/nodes/alpha/vms', { ...VALID, source: s }, m);
    if (optional) json('create vncPort', 'POST', '/api/nodes/alpha/vms', { ...VALID, vncPort: s }, m);
    json('migrate to', 'POST', '/api/nodes/alpha/vms/kfdp-a/migrate', { to: s }, m);
    if (optional) json('migrate mode', 'POST', '/api/nodes/alpha/vms/kfdp-a/migrate', { to: 'beta', mode: s }, m);
    if (!pathOk) continue;
    json('migrate vm', 'POST', `/api/nodes/alpha/vms/${enc(s)}/migrate`, { to: 'beta' }, m);
    t.push({ what: 'start vm', method: 'POST', path: `/api/nodes/alpha/vms/${enc(s)}/start`, markers: m });
    t.push({ what: 'poweroff vm', method: 'POST', path: `/api/nodes/alpha/vms/${enc(s)}/poweroff`, markers: m });
    t.push({ what: 'delete vm', method: 'DELETE', path: `/api/nodes/alpha/vms/${enc(s)}?disks=delete&force=true`, markers: m });
    t.push({ what: 'delete disks', method: 'DELETE', path: `/api/nodes/alpha/vms/kfdp-a?disks=${enc(s)}`, markers: m });
    t.push({ what: 'stats vm', method: 'GET', path: `/api/nodes/alpha/vms/${enc(s)}/stats?range=1h`, markers: m });
    t.push({ what: 'stats range', method: 'GET', path: `/api/nodes/alpha/vms/kfdp-a/stats?range=${enc(s)}`, markers: m });
    t.push({ what: 'node', method: 'POST', path: `/api/nodes/${enc(s)}/vms/kfdp-b/start`, markers: m });
  }
  for (const n of HOSTILE_NUMBERS) {
    const m = markerOf(n);
    for (const field of ['vcpus', 'memoryMiB', 'diskGiB']) json(`create ${field}=${JSON.stringify(n)}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, [field]: n }, m);
    if (!DEFAULTED.has(n)) {
      json(`create vncPort=${JSON.stringify(n)}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, vncPort: n }, m);
      json('shutdown timeout', 'POST', '/api/nodes/alpha/vms/kfdp-a/shutdown', { timeoutSec: n }, m);
    }
    if (!DEFAULTED.has(n) && !BOOLISH.has(n)) {
      json('create start flag', 'POST', '/api/nodes/alpha/vms', { ...VALID, start: n }, m);
      json('shutdown force', 'POST', '/api/nodes/alpha/vms/kfdp-a/shutdown', { timeoutSec: 5, force: n }, m);
    }
    if ((typeof n === 'string' || typeof n === 'number') && String(n) !== '0') {
      t.push({ what: 'wait param', method: 'POST', path: `/api/nodes/alpha/vms/kfdp-b/start?wait=${enc(String(n))}`, markers: m });
      t.push({ what: 'job id', method: 'POST', path: `/api/jobs/${enc(String(n))}/abort`, markers: m });
    }
  }
  for (const v of TYPE_CONFUSION) {
    const m = markerOf(v);
    for (const field of ['name', 'vcpus', 'memoryMiB', 'diskGiB', 'iso', 'osVariant', 'source']) {
      if (DEFAULTED.has(v) && (field === 'osVariant' || field === 'source')) continue;
      json(`create ${field} as ${JSON.stringify(v)}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, source: field === 'iso' ? 'iso' : VALID.source, [field]: v }, m);
    }
    json('migrate to as non-string', 'POST', '/api/nodes/alpha/vms/kfdp-a/migrate', { to: v }, m);
  }
  // Symlinks out of the ISO and image directories, set up in beforeAll.
  for (const iso of ['escape.iso', 'etc-link/passwd', 'etc-link/../etc-link/hostname', 'dangling.iso']) {
    json(`iso symlink ${iso}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, source: 'iso', iso }, [iso]);
    json(`image symlink ${iso}`, 'POST', '/api/nodes/alpha/vms', { ...VALID, source: 'import', image: iso.replace('.iso', '.qcow2') }, [iso.replace('.iso', '.qcow2')]);
  }
  // Prototype pollution and duplicate keys (raw JSON text, so the keys survive).
  const raw = (what: string, body: string, path = '/api/nodes/alpha/vms') => t.push({ what, method: 'POST', path, body, contentType: 'application/json', markers: [] });
  raw('__proto__ body', `{"__proto__":{"polluted":"yes","hostCpus":100000},"name":"kfdp-p1","vcpus":999999,"memoryMiB":128,"diskGiB":1}`);
  raw('constructor.prototype body', `{"constructor":{"prototype":{"polluted":"yes"}},"name":"--p2","vcpus":1,"memoryMiB":128,"diskGiB":1}`);
  raw('__proto__ osVariants', `{"name":"kfdp-p3","vcpus":1,"memoryMiB":128,"diskGiB":1,"osVariant":"__proto__"}`);
  raw('duplicate keys', `{"name":"kfdp-ok","name":"; touch ${PWNED}","vcpus":1,"memoryMiB":128,"diskGiB":1}`);
  raw('duplicate keys number', `{"name":"kfdp-ok2","vcpus":1,"vcpus":-5,"memoryMiB":128,"diskGiB":1}`);
  raw('__proto__ shutdown', `{"__proto__":{"timeoutSec":5},"timeoutSec":"x"}`, '/api/nodes/alpha/vms/kfdp-a/shutdown');
  raw('body is array', `[{"name":"kfdp-arr","vcpus":1,"memoryMiB":128,"diskGiB":1}]`);
  raw('body is string', `"kfdp-str"`);
  raw('body is number', `42`);
  raw('body is malformed', `{"name":"kfdp-bad",`);
  raw('body nested deeply', '['.repeat(5000) + ']'.repeat(5000));
  // Duplicate names: an existing VM, and an existing disk file.
  json('duplicate VM name', 'POST', '/api/nodes/alpha/vms', { ...VALID, name: 'kfdp-a' }, []);
  json('duplicate disk file', 'POST', '/api/nodes/alpha/vms', { ...VALID, name: 'kfdp-orphan' }, []);
  // Wrong content types and sizes.
  for (const ct of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/octet-stream', 'text/html', 'application/json-patch+json', 'image/png']) {
    t.push({ what: `content-type ${ct}`, method: 'POST', path: '/api/nodes/alpha/vms', body: JSON.stringify({ ...VALID, name: 'kfdp-ct' }), contentType: ct, markers: ['kfdp-ct'] });
    t.push({ what: `content-type ${ct} on start`, method: 'POST', path: '/api/nodes/alpha/vms/kfdp-b/start', body: 'x=1', contentType: ct, markers: [] });
  }
  t.push({ what: 'form-encoded hostile name', method: 'POST', path: '/api/nodes/alpha/vms', body: `name=${enc('$(id)')}&vcpus=1&memoryMiB=128&diskGiB=1`, contentType: 'application/x-www-form-urlencoded', markers: ['$(id)'] });
  t.push({ what: 'form-encoded repeated name', method: 'POST', path: '/api/nodes/alpha/vms', body: 'name=kfdp-r&name=--x&vcpus=1&memoryMiB=128&diskGiB=1', contentType: 'application/x-www-form-urlencoded', markers: ['--x'] });
  t.push({ what: 'body over 64 KiB', method: 'POST', path: '/api/nodes/alpha/vms', body: JSON.stringify({ ...VALID, name: 'kfdp-huge', pad: 'x'.repeat(70_000) }), contentType: 'application/json', markers: ['kfdp-huge'] });
  t.push({ what: 'long URL', method: 'POST', path: `/api/nodes/alpha/vms/${'k'.repeat(8000)}/start`, markers: [] });
  // Node's HTTP parser refuses a request line over 16 KiB itself (431, no body): still a refusal, before the app.
  t.push({ what: 'overlong URL', method: 'POST', path: `/api/nodes/alpha/vms/${'k'.repeat(60_000)}/start`, markers: [], refusedByHttpParser: true });
  return t;
}

let f: Fixture;
let app: TestApp;
beforeAll(async () => {
  f = makeFixture([{ name: 'kfdp-a' }, { name: 'kfdp-b', state: 'shut-off' }]);
  mkdirSync(join(f.dir, 'outside'));
  writeFileSync(join(f.dir, 'outside', 'secret.iso'), 'not yours');
  writeFileSync(join(f.dir, 'outside', 'secret.qcow2'), 'not yours');
  symlinkSync(join(f.dir, 'outside', 'secret.iso'), join(f.isoDir, 'escape.iso'));
  symlinkSync('/etc', join(f.isoDir, 'etc-link'));
  symlinkSync('/nonexistent/kfdp', join(f.isoDir, 'dangling.iso'));
  symlinkSync(join(f.dir, 'outside', 'secret.qcow2'), join(f.imageDir, 'escape.qcow2'));
  symlinkSync('/etc', join(f.imageDir, 'etc-link'));
  writeFileSync(join(f.imageDir, 'kfdp-orphan.qcow2'), '');
  app = await startTestApp(f, {
    peers: [{ name: 'beta', sshHost: '127.0.0.1', sshPort: 1, sshKeyFile: join(f.dir, 'no-key'), hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfdpKfdpKfdpKfdpKfdpKfdpKfdpKfdpKfdpKfdpKfd', dataAddress: '127.0.0.1' }],
  });
});
afterAll(async () => {
  await app?.close();
});

describe('abuse: hostile requests', () => {
  it('answers every one with a 4xx JSON sentence and starts no command carrying a hostile value', async () => {
    const tries = generate();
    expect(tries.length).toBeGreaterThanOrEqual(500);
    const before = app.commands.length;
    const bad: string[] = [];
    for (const t of tries) {
      const res = await fetch(app.url + t.path, {
        method: t.method,
        headers: t.contentType ? { 'content-type': t.contentType } : {},
        body: t.body ?? null,
      });
      const text = await res.text();
      let message: unknown;
      try {
        message = (JSON.parse(text) as { error?: { message?: unknown } }).error?.message;
      } catch {
        message = undefined;
      }
      if (t.refusedByHttpParser && res.status === 431) continue;
      if (res.status < 400 || res.status >= 500 || typeof message !== 'string' || message.length < 10) {
        bad.push(`${t.what} ${t.method} ${t.path.slice(0, 80)} → ${res.status} ${text.slice(0, 160)}`);
      }
    }
    const started = app.commands.slice(before);
    const markers = tries.flatMap((t) => t.markers);
    const leaked = started.filter((c) => markers.some((m) => [c.file, ...c.args].some((a) => a.includes(m))));
    const rejected = tries.length - bad.length;
    process.stdout.write(`abuse: tried=${tries.length} rejected_4xx_json=${rejected} commands_started=${started.length} commands_with_hostile_values=${leaked.length}\n`);
    process.stdout.write(`abuse: commands started (read-only lookups): ${[...new Set(started.map((c) => `${c.file} ${c.args.slice(0, 3).join(' ')}`))].join('; ') || 'none'}\n`);
    expect(bad).toEqual([]);
    expect(leaked).toEqual([]);
    // Nothing changed: the same two VMs in the same states, no new disk, nothing written outside.
    expect(existsSync(PWNED)).toBe(false);
    const vms = (await (await fetch(`${app.url}/api/nodes/alpha/vms`)).json()) as { name: string; state: string }[];
    expect(vms.map((v) => [v.name, v.state]).sort()).toEqual([['kfdp-a', 'running'], ['kfdp-b', 'shut-off']]);
    expect(readdirSync(f.imageDir).sort()).toEqual(['escape.qcow2', 'etc-link', 'kfdp-orphan.qcow2']);
    expect(app.deps.jobsRepo.recent(10)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'hostCpus')).toBe(false);
    // ~1500 requests: 27 s on an idle 2-core machine, more while guests run beside it.
  }, 120_000);
});
