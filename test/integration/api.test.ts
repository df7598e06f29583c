import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeFixture } from '../helpers/fixture.js';
import { api, fromNginx, startTestApp, type TestApp } from '../helpers/test-app.js';

let app: TestApp | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

async function appWith(...args: Parameters<typeof makeFixture>) {
  const f = makeFixture(...args);
  app = await startTestApp(f);
  return { app, f };
}

describe('GET /api/nodes and /healthz', () => {
  it('lists this node as up', async () => {
    const { app } = await appWith();
    const r = await api(app, 'GET', '/api/nodes');
    expect(r.status).toBe(200);
    expect(r.json).toEqual([{ name: 'alpha', local: true, status: 'up' }]);
    expect((await api(app, 'GET', '/healthz')).json).toMatchObject({ ok: true, node: 'alpha' });
  });

  it('reports libvirt unreachable as 503 with a sentence', async () => {
    const f = makeFixture();
    app = await startTestApp({ ...f, uri: 'test:///nonexistent/path/node.xml' });
    const r = await api(app, 'GET', '/api/nodes/alpha/vms');
    expect(r.status).toBe(503);
    expect(r.json.error.code).toBe('LIBVIRT_UNREACHABLE');
    expect(r.json.error.message).toMatch(/Cannot connect to libvirt/);
    expect((await api(app, 'GET', '/healthz')).status).toBe(503);
  });
});

describe('GET /api/nodes/:node/vms', () => {
  it('lists name, UUID, state, vCPUs, RAM, VNC port, disks with sizes, autostart', async () => {
    const { app, f } = await appWith([
      { name: 'web-01', vcpus: 2, memoryMiB: 512, vncPort: 5901, disks: [] },
      { name: 'db-01', state: 'shut-off' },
    ]);
    const r = await api(app, 'GET', '/api/nodes/alpha/vms');
    expect(r.status).toBe(200);
    expect(r.json.map((v: { name: string }) => v.name)).toEqual(['db-01', 'web-01']);
    const web = r.json[1];
    expect(web).toMatchObject({ name: 'web-01', state: 'running', vcpus: 2, memoryMiB: 512, vncPort: 5901, vncListen: '127.0.0.1', autostart: false });
    expect(web.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(r.json[0].state).toBe('shut-off');
    expect(f.uri).toContain('test://');
  });

  it('reads disk virtual and allocated bytes from real qcow2 files', async () => {
    const f = makeFixture();
    const disk = join(f.imageDir, 'd.qcow2');
    const { execFileSync } = await import('node:child_process');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, String(2 * 1024 ** 3)]);
    const f2 = makeFixture([{ name: 'vm1', disks: [{ path: disk }] }]);
    app = await startTestApp({ ...f2, imageDir: f.imageDir });
    const vm = (await api(app, 'GET', '/api/nodes/alpha/vms/vm1')).json;
    expect(vm.disks[0]).toMatchObject({ path: disk, format: 'qcow2', virtualBytes: 2 * 1024 ** 3 });
    expect(vm.disks[0].allocatedBytes).toBeGreaterThan(0);
    expect(vm.disks[0].allocatedBytes).toBeLessThan(1024 * 1024);
  });

  it('answers 404 for an unknown node or VM', async () => {
    const { app } = await appWith([{ name: 'web-01' }]);
    expect((await api(app, 'GET', '/api/nodes/other/vms')).json.error.code).toBe('NODE_NOT_FOUND');
    const r = await api(app, 'GET', '/api/nodes/alpha/vms/nope');
    expect(r.status).toBe(404);
    expect(r.json.error).toMatchObject({ code: 'VM_NOT_FOUND', message: 'VM nope does not exist on node alpha.' });
  });
});

describe('POST /api/nodes/:node/vms (create)', () => {
  it('creates a sparse qcow2 disk and defines and starts the VM as a job', async () => {
    const { app, f } = await appWith();
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=20', { name: 'new-vm', vcpus: 2, memoryMiB: 256, diskGiB: 3, source: 'none' });
    expect(r.status).toBe(200);
    expect(r.json.job).toMatchObject({ kind: 'create', vm: 'new-vm', state: 'ok', message: 'VM new-vm created and started.' });
    const disk = join(f.imageDir, 'new-vm.qcow2');
    expect(existsSync(disk)).toBe(true);
    const vm = (await api(app, 'GET', '/api/nodes/alpha/vms/new-vm')).json;
    expect(vm).toMatchObject({ state: 'running', vcpus: 2, memoryMiB: 256 });
    expect(vm.disks[0]).toMatchObject({ path: disk, virtualBytes: 3 * 1024 ** 3 });
    expect(vm.disks[0].allocatedBytes).toBeLessThan(2 * 1024 * 1024);
  });

  it('returns 202 and a job to follow when not asked to wait', async () => {
    const { app } = await appWith();
    const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'later', vcpus: 1, memoryMiB: 128, diskGiB: 1, start: false });
    expect(r.status).toBe(202);
    expect(r.headers.get('location')).toBe(`/api/nodes/alpha/jobs/${r.json.job.id}`);
    const done = await api(app, 'GET', `/api/jobs/${r.json.job.id}?wait=20`);
    expect(done.json).toMatchObject({ state: 'ok', message: 'VM later created.' });
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/later')).json.state).toBe('shut-off');
  });

  it('attaches an ISO from the ISO directory as a CD-ROM', async () => {
    const { app, f } = await appWith();
    writeFileSync(join(f.isoDir, 'installer.iso'), 'not really an iso');
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=20', { name: 'from-iso', vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: 'installer.iso' });
    expect(r.json.job.state).toBe('ok');
    const vm = (await api(app, 'GET', '/api/nodes/alpha/vms/from-iso')).json;
    expect(vm.disks.map((d: { device: string }) => d.device)).toEqual(['disk', 'cdrom']);
    expect(vm.disks[1].path).toBe(join(f.isoDir, 'installer.iso'));
  });

  it('imports an existing image without creating a new disk', async () => {
    const { app, f } = await appWith();
    const { execFileSync } = await import('node:child_process');
    const img = join(f.imageDir, 'appliance.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', img, '1G']);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=20', { name: 'imported', vcpus: 1, memoryMiB: 128, source: 'import', image: 'appliance.qcow2' });
    expect(r.json.job.state).toBe('ok');
    const vm = (await api(app, 'GET', '/api/nodes/alpha/vms/imported')).json;
    expect(vm.disks).toHaveLength(1);
    expect(vm.disks[0].path).toBe(img);
    expect(existsSync(join(f.imageDir, 'imported.qcow2'))).toBe(false);
  });

  it('refuses to import an image that a running create job is already importing', async () => {
    const { app, f } = await appWith();
    const { execFileSync } = await import('node:child_process');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(f.imageDir, 'one.qcow2'), '1G']);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    app.deps.jobs.submit(
      { kind: 'create', node: 'alpha', vm: 'first', user: null, params: { imagePath: join(f.imageDir, 'one.qcow2') }, message: 'importing' },
      async () => {
        await held;
        return { message: 'done' };
      },
    );
    const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'second', vcpus: 1, memoryMiB: 128, source: 'import', image: 'one.qcow2' });
    release();
    expect(r.status).toBe(409);
    expect(r.json.error.message).toMatch(/being imported by job #1 for VM first/);
  });

  const bad: [string, Record<string, unknown>, string][] = [
    ['a shell metacharacter name', { name: 'x;reboot' }, 'name'],
    ['an option-like name', { name: '--foo' }, 'name'],
    ['a unicode name', { name: 'вм-1' }, 'name'],
    ['too many vCPUs', { vcpus: 9 }, 'vcpus'],
    ['zero vCPUs', { vcpus: 0 }, 'vcpus'],
    ['fractional RAM', { memoryMiB: 128.5 }, 'memoryMiB'],
    ['RAM below 64 MiB', { memoryMiB: 32 }, 'memoryMiB'],
    ['RAM above the host', { memoryMiB: 999999 }, 'memoryMiB'],
    ['a negative disk', { diskGiB: -1 }, 'diskGiB'],
    ['a disk larger than free space', { diskGiB: 10_000_000 }, 'diskGiB'],
    ['a VNC port below 5900', { vncPort: 22 }, 'vncPort'],
    ['an unknown OS variant', { osVariant: 'beos$(id)' }, 'osVariant'],
    ['an ISO outside the ISO directory', { source: 'iso', iso: '../../etc/passwd' }, 'iso'],
    ['an absolute image path outside the image directory', { source: 'import', image: '/etc/shadow' }, 'image'],
  ];
  for (const [what, patch, field] of bad) {
    it(`refuses ${what} with 400 naming ${field}, and starts no command`, async () => {
      const { app } = await appWith();
      const before = app.commands.length;
      const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 1, memoryMiB: 128, diskGiB: 1, ...patch });
      expect(r.status).toBe(400);
      expect(r.json.error.code).toBe('BAD_INPUT');
      expect(r.json.error.field).toBe(field);
      expect(r.json.error.message.length).toBeGreaterThan(10);
      // Listing OS variants is the only command the request may start before validation fails;
      // the inventory cache's background read of the autostart list may run meanwhile.
      const backgroundRead = (c: { file: string; args: readonly string[] }) => c.file === 'virsh' && c.args.includes('list') && c.args.includes('--autostart');
      expect(app.commands.slice(before).filter((c) => !(c.file === 'virt-install' && c.args.includes('list')) && !backgroundRead(c))).toEqual([]);
      expect((await api(app, 'GET', '/api/jobs')).json).toEqual([]);
    });
  }

  it('refuses a symlink that leads out of the ISO directory', async () => {
    const { app, f } = await appWith();
    symlinkSync('/etc/hostname', join(f.isoDir, 'sneaky.iso'));
    const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'x1', vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: 'sneaky.iso' });
    expect(r.status).toBe(400);
    expect(r.json.error.field).toBe('iso');
  });

  it('refuses a name that is taken, and a disk file that already exists, with 409', async () => {
    const { app, f } = await appWith([{ name: 'taken' }]);
    expect((await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'taken', vcpus: 1, memoryMiB: 128, diskGiB: 1 })).json.error.code).toBe('NAME_TAKEN');
    mkdirSync(f.imageDir, { recursive: true });
    writeFileSync(join(f.imageDir, 'orphan.qcow2'), 'precious data');
    const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'orphan', vcpus: 1, memoryMiB: 128, diskGiB: 1 });
    expect(r.status).toBe(409);
    expect(r.json.error.message).toMatch(/already exists/);
  });

  it('refuses a VNC port another VM already uses', async () => {
    const { app } = await appWith([{ name: 'has-vnc', vncPort: 5977 }]);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'x2', vcpus: 1, memoryMiB: 128, diskGiB: 1, vncPort: 5977 });
    expect(r.status).toBe(400);
    expect(r.json.error.message).toMatch(/has-vnc/);
  });

  it('refuses wrong content types with 415 and bad JSON with 400', async () => {
    const { app } = await appWith();
    const r1 = await fetch(`${app.url}/api/nodes/alpha/vms`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'name=x' });
    expect(r1.status).toBe(415);
    const r2 = await fetch(`${app.url}/api/nodes/alpha/vms`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":' });
    expect(r2.status).toBe(400);
    expect(((await r2.json()) as { error: { code: string } }).error.code).toBe('BAD_INPUT');
  });

  it('removes the disk it made when virt-install fails, and defines nothing', async () => {
    const f = makeFixture();
    // The test driver offers no KVM domain type, so virt-install refuses --virt-type kvm after the disk exists.
    app = await startTestApp(f, { virtType: 'kvm' });
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=20', { name: 'doomed', vcpus: 1, memoryMiB: 128, diskGiB: 1 });
    expect(r.json.job.state).toBe('failed');
    expect(r.json.job.message).toBe('virt-install rejected the settings for VM doomed.');
    expect(r.json.job.detail).toMatch(/virt-install/);
    expect(r.json.job.result).toMatchObject({ createdDisk: join(f.imageDir, 'doomed.qcow2') });
    expect(existsSync(join(f.imageDir, 'doomed.qcow2'))).toBe(false);
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/doomed')).status).toBe(404);
  });
});

describe('start, shutdown, poweroff, delete', () => {
  it('starts a shut-off VM and refuses to start a running one with 409', async () => {
    const { app } = await appWith([{ name: 'off', state: 'shut-off' }]);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms/off/start?wait=10');
    expect(r.json.job).toMatchObject({ kind: 'start', state: 'ok' });
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/off')).json.state).toBe('running');
    const again = await api(app, 'POST', '/api/nodes/alpha/vms/off/start');
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('VM_STATE_CONFLICT');
  });

  it('shuts down a running VM (ACPI) and forces off', async () => {
    const { app } = await appWith([{ name: 'a' }, { name: 'b' }]);
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/a/shutdown?wait=10', { timeoutSec: 5 })).json.job.state).toBe('ok');
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/a')).json.state).toBe('shut-off');
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/b/poweroff?wait=10')).json.job.message).toBe('VM b forced off.');
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/b')).json.state).toBe('shut-off');
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/b/poweroff')).status).toBe(409);
  });

  it('refuses a bad shutdown timeout', async () => {
    const { app } = await appWith([{ name: 'a' }]);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms/a/shutdown', { timeoutSec: -5 });
    expect(r.status).toBe(400);
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/a')).json.state).toBe('running');
  });

  it('refuses to delete a running VM unless forced; deletes with disks when asked', async () => {
    const f = makeFixture();
    const disk = join(f.imageDir, 'victim.qcow2');
    const { execFileSync } = await import('node:child_process');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1G']);
    const f2 = makeFixture([{ name: 'victim', disks: [{ path: disk }, { path: '/srv/some.iso', device: 'cdrom' }] }]);
    app = await startTestApp({ ...f2, imageDir: f.imageDir });
    const refused = await api(app, 'DELETE', '/api/nodes/alpha/vms/victim?disks=delete');
    expect(refused.status).toBe(409);
    expect(existsSync(disk)).toBe(true);
    const r = await api(app, 'DELETE', '/api/nodes/alpha/vms/victim?disks=delete&force=true&wait=10');
    expect(r.json.job).toMatchObject({ state: 'ok', message: 'VM victim deleted with 1 disk(s).' });
    expect(r.json.job.result.deletedDisks).toEqual([disk]);
    expect(existsSync(disk)).toBe(false);
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/victim')).status).toBe(404);
  });

  it('keeps disks by default and never deletes a disk another VM uses', async () => {
    const f = makeFixture();
    const shared = join(f.imageDir, 'shared.qcow2');
    const { execFileSync } = await import('node:child_process');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', shared, '1G']);
    const f2 = makeFixture([
      { name: 'one', state: 'shut-off', disks: [{ path: shared }] },
      { name: 'two', state: 'shut-off', disks: [{ path: shared }] },
    ]);
    app = await startTestApp({ ...f2, imageDir: f.imageDir });
    const keep = await api(app, 'DELETE', '/api/nodes/alpha/vms/one?wait=10');
    expect(keep.json.job.message).toBe('VM one deleted; its disks were kept.');
    expect(existsSync(shared)).toBe(true);
    await api(app, 'POST', '/api/nodes/alpha/vms', { name: 'x', vcpus: 1, memoryMiB: 128, diskGiB: 1 });
    expect(existsSync(shared)).toBe(true);
  });

  it('rejects bad delete options with 400', async () => {
    const { app } = await appWith([{ name: 'a', state: 'shut-off' }]);
    expect((await api(app, 'DELETE', '/api/nodes/alpha/vms/a?disks=all')).status).toBe(400);
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/a')).status).toBe(200);
  });
});

describe('jobs', () => {
  it('answers 409 to a second action while the VM has a running job', async () => {
    const { app } = await appWith([{ name: 'busy' }]);
    // A long shutdown keeps the job running: the test driver shuts down at once, so
    // hold the lock by starting a slow job through the runner directly.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    app.deps.jobs.submit({ kind: 'shutdown', node: 'alpha', vm: 'busy', user: null, params: {}, message: 'holding' }, async () => {
      await held;
      return { message: 'released' };
    });
    const r = await api(app, 'POST', '/api/nodes/alpha/vms/busy/poweroff');
    expect(r.status).toBe(409);
    expect(r.json.error.code).toBe('VM_BUSY');
    expect(r.json.error.message).toMatch(/busy with job #1/);
    release();
    await app.deps.jobs.drain();
    expect((await api(app, 'POST', '/api/nodes/alpha/vms/busy/poweroff?wait=10')).json.job.state).toBe('ok');
  });

  it('records the user from the proxy header and lists jobs newest first', async () => {
    const { app } = await appWith([{ name: 'a', state: 'shut-off' }]);
    await api(app, 'POST', '/api/nodes/alpha/vms/a/start?wait=10', undefined, fromNginx(app, 'alice'));
    const jobs = (await api(app, 'GET', '/api/jobs')).json;
    expect(jobs[0]).toMatchObject({ kind: 'start', vm: 'a', user: 'alice', state: 'ok' });
    expect(jobs[0].endedAt).not.toBeNull();
    expect((await api(app, 'GET', '/api/jobs/9999')).status).toBe(404);
    expect((await api(app, 'GET', '/api/jobs/abc')).status).toBe(400);
  });

  it('marks jobs left running by a previous process as failed on start-up', async () => {
    const { app } = await appWith([{ name: 'a' }]);
    app.deps.jobsRepo.start({ kind: 'create', node: 'alpha', vm: 'ghost', user: null, params: {}, message: 'x' });
    const failed = app.deps.jobs.failOrphans();
    expect(failed).toHaveLength(1);
    expect(failed[0]!.message).toMatch(/restarted/);
  });
});

describe('cross-site protection', () => {
  it('refuses a state change from another site even with credentials', async () => {
    const { app } = await appWith([{ name: 'a' }]);
    const r = await api(app, 'POST', '/api/nodes/alpha/vms/a/poweroff', undefined, { 'sec-fetch-site': 'cross-site' });
    expect(r.status).toBe(403);
    const r2 = await api(app, 'POST', '/api/nodes/alpha/vms/a/poweroff', undefined, { origin: 'https://evil.example' });
    expect(r2.status).toBe(403);
    expect((await api(app, 'GET', '/api/nodes/alpha/vms/a')).json.state).toBe('running');
  });
});
