import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';
import { GUEST_DIR, removeDomains, removePoolsUnder, requireRealLibvirt, virsh, virshNames, waitFor } from '../helpers/lab-prereqs.js';

/**
 * The foundation on real libvirtd + QEMU (TCG: KVM guests hang on these machines):
 * create from an ISO and by import, start, shut down, force off, delete, and bad input.
 */
const prefix = `kfe2e-${randomBytes(3).toString('hex')}-`;
const root = `/var/lib/kvm-ferry-e2e/${prefix.slice(0, -1)}`;
const dirs = { imageDir: join(root, 'images'), isoDir: join(root, 'iso'), dataDir: join(root, 'data'), serialDir: join(root, 'serial') };
let app: TestApp;

const isoVm = `${prefix}iso`;
const importVm = `${prefix}imp`;

function serialLog(vm: string): string {
  const p = join(dirs.serialDir, `${vm}-serial.log`);
  return existsSync(p) ? readFileSync(p, 'utf8') : '';
}

function bootCount(vm: string): number {
  return serialLog(vm).split('kvm-ferry-counter 1 ').length - 1;
}

function lastCounter(vm: string): number {
  const m = [...serialLog(vm).matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
}

beforeAll(async () => {
  requireRealLibvirt();
  for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
  copyFileSync(join(GUEST_DIR, 'guest.iso'), join(dirs.isoDir, 'tiny-installer.iso'));
  copyFileSync(join(GUEST_DIR, 'guest.qcow2'), join(dirs.imageDir, 'tiny-appliance.qcow2'));
  app = await startTestApp({ uri: 'qemu:///system', imageDir: dirs.imageDir, isoDir: dirs.isoDir, dataDir: dirs.dataDir }, {
    virtType: 'qemu',
    serialLogDir: dirs.serialDir,
  });
});

afterAll(async () => {
  await app?.close();
  removeDomains(prefix);
  removePoolsUnder(root);
  rmSync(root, { recursive: true, force: true });
});

describe('a VM on real libvirt + QEMU', () => {
  it('is created from an ISO in the ISO directory, boots from it, and shows in virsh list', async () => {
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=120', {
      name: isoVm, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: 'tiny-installer.iso', start: true,
    });
    expect(r.json.job, JSON.stringify(r.json)).toMatchObject({ state: 'ok', message: `VM ${isoVm} created and started.` });
    expect(virshNames(false)).toContain(isoVm);
    const vm = (await api(app, 'GET', `/api/nodes/alpha/vms/${isoVm}`)).json;
    expect(vm).toMatchObject({ state: 'running', vcpus: 1, memoryMiB: 128, vncListen: '127.0.0.1', autostart: false });
    expect(vm.vncPort).toBeGreaterThanOrEqual(5900);
    const disk = vm.disks.find((d: { device: string }) => d.device === 'disk');
    expect(disk).toMatchObject({ path: join(dirs.imageDir, `${isoVm}.qcow2`), format: 'qcow2', virtualBytes: 1024 ** 3 });
    expect(disk.allocatedBytes).toBeLessThan(5 * 1024 * 1024);
    // The guest on the ISO prints a counter to its serial port: it really booted.
    await waitFor('the ISO guest to print its counter', 90_000, () => lastCounter(isoVm) >= 2);
  });

  it('is created by importing a bootable image, without a new disk', async () => {
    const r = await api(app, 'POST', '/api/nodes/alpha/vms?wait=120', {
      name: importVm, vcpus: 1, memoryMiB: 128, source: 'import', image: 'tiny-appliance.qcow2', vncPort: 5987,
    });
    expect(r.json.job.state, JSON.stringify(r.json.job)).toBe('ok');
    const vm = (await api(app, 'GET', `/api/nodes/alpha/vms/${importVm}`)).json;
    expect(vm.vncPort).toBe(5987);
    expect(vm.disks).toHaveLength(1);
    expect(vm.disks[0].path).toBe(join(dirs.imageDir, 'tiny-appliance.qcow2'));
    expect(existsSync(join(dirs.imageDir, `${importVm}.qcow2`))).toBe(false);
    await waitFor('the imported guest to print its counter', 90_000, () => lastCounter(importVm) >= 2);
  });

  it('refuses hostile and impossible input with 4xx and changes nothing', async () => {
    const domainsBefore = virshNames().sort();
    const filesBefore = readdirSync(dirs.imageDir).sort();
    const commandsBefore = app.commands.length;
    const attempts: [string, string, unknown][] = [
      ['POST', '/api/nodes/alpha/vms', { name: '$(touch /tmp/pwned)', vcpus: 1, memoryMiB: 128, diskGiB: 1 }],
      ['POST', '/api/nodes/alpha/vms', { name: '--connect=test:///default', vcpus: 1, memoryMiB: 128, diskGiB: 1 }],
      ['POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'iso', iso: '../../../../etc/shadow' }],
      ['POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 100000, memoryMiB: 128, diskGiB: 1 }],
      ['POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 1, memoryMiB: -128, diskGiB: 1 }],
      ['POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 1, memoryMiB: 128, diskGiB: 99999999 }],
      ['POST', '/api/nodes/alpha/vms', { name: isoVm, vcpus: 1, memoryMiB: 128, diskGiB: 1 }],
      ['POST', '/api/nodes/alpha/vms', { name: 'ok-name', vcpus: 1, memoryMiB: 128, source: 'import', image: 'tiny-appliance.qcow2' }],
      ['POST', `/api/nodes/alpha/vms/${isoVm}/start`, undefined],
      ['DELETE', `/api/nodes/alpha/vms/${isoVm}?disks=delete`, undefined],
      ['POST', `/api/nodes/alpha/vms/;reboot/poweroff`, undefined],
      ['POST', `/api/nodes/alpha/vms/${isoVm}/shutdown`, { timeoutSec: 1.5 }],
    ];
    for (const [method, path, body] of attempts) {
      const r = await api(app, method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}`).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.json.error.message).toMatch(/\w+ .*\./);
    }
    expect(virshNames().sort()).toEqual(domainsBefore);
    expect(readdirSync(dirs.imageDir).sort()).toEqual(filesBefore);
    expect(existsSync('/tmp/pwned')).toBe(false);
    // Only read-only commands may have run (the import check reads the image header).
    const started = app.commands.slice(commandsBefore).map((c) => `${c.file} ${c.args.join(' ')}`);
    expect(started.filter((c) => !/^(virsh .* list --all --autostart --uuid|virsh .* net-info|qemu-img info)/.test(c))).toEqual([]);
  });

  it('reports a guest that ignores ACPI shutdown within the timeout, and leaves it running', async () => {
    // The busybox guest has no ACPI daemon, so it ignores the power button — like a hung OS.
    const r = await api(app, 'POST', `/api/nodes/alpha/vms/${isoVm}/shutdown?wait=60`, { timeoutSec: 2 });
    expect(r.json.job).toMatchObject({ state: 'failed' });
    expect(r.json.job.message).toBe(`VM ${isoVm} did not shut down within 2 s; the guest may ignore ACPI — use Force off.`);
    expect(virshNames(false)).toContain(isoVm);
  });

  it('shuts down with force after the timeout, as one action', async () => {
    const r = await api(app, 'POST', `/api/nodes/alpha/vms/${isoVm}/shutdown?wait=60`, { timeoutSec: 2, force: true });
    expect(r.json.job).toMatchObject({ state: 'ok', message: `VM ${isoVm} did not shut down within 2 s and was forced off.` });
    expect(virshNames(false)).not.toContain(isoVm);
    expect(virsh('domstate', isoVm).trim()).toBe('shut off');
  });

  it('forces off a running VM, then starts it again', async () => {
    expect((await api(app, 'POST', `/api/nodes/alpha/vms/${importVm}/poweroff?wait=60`)).json.job.state).toBe('ok');
    expect(virsh('domstate', importVm).trim()).toBe('shut off');
    const bootsBefore = bootCount(importVm);
    expect((await api(app, 'POST', `/api/nodes/alpha/vms/${importVm}/start?wait=60`)).json.job.state).toBe('ok');
    expect(virshNames(false)).toContain(importVm);
    // A fresh boot starts its counter at 1 again in the (appended) serial log.
    await waitFor('the restarted guest to boot again', 90_000, () => bootCount(importVm) === bootsBefore + 1);
  });

  it('deletes a running VM only with force, keeping an imported image when asked', async () => {
    expect((await api(app, 'DELETE', `/api/nodes/alpha/vms/${importVm}`)).status).toBe(409);
    const r = await api(app, 'DELETE', `/api/nodes/alpha/vms/${importVm}?disks=keep&force=true&wait=60`);
    expect(r.json.job).toMatchObject({ state: 'ok', message: `VM ${importVm} deleted; its disks were kept.` });
    expect(virshNames()).not.toContain(importVm);
    expect(existsSync(join(dirs.imageDir, 'tiny-appliance.qcow2'))).toBe(true);
  });

  it('deletes a VM with its disks: the disk file is gone and virsh no longer lists it; the ISO stays', async () => {
    const r = await api(app, 'DELETE', `/api/nodes/alpha/vms/${isoVm}?disks=delete&wait=60`);
    expect(r.json.job).toMatchObject({ state: 'ok', message: `VM ${isoVm} deleted with 1 disk(s).` });
    expect(existsSync(join(dirs.imageDir, `${isoVm}.qcow2`))).toBe(false);
    expect(existsSync(join(dirs.isoDir, 'tiny-installer.iso'))).toBe(true);
    expect(virshNames()).not.toContain(isoVm);
  });

  it('leaves no storage pool behind but the ones virt-install made for its directories', () => {
    const pools = virsh('pool-list', '--all', '--name').split('\n').map((x) => x.trim()).filter(Boolean);
    const paths = pools.map((p) => /<path>([^<]*)<\/path>/.exec(virsh('pool-dumpxml', p))?.[1]);
    expect(paths.filter((p) => p?.startsWith(root)).sort()).toEqual([dirs.imageDir, dirs.isoDir].sort());
  });

  it('recorded every action as a job with its real outcome', async () => {
    const jobs = (await api(app, 'GET', '/api/jobs?limit=20')).json as { kind: string; state: string }[];
    expect(jobs.map((j) => `${j.kind}:${j.state}`).reverse()).toEqual([
      'create:ok', 'create:ok', 'shutdown:failed', 'shutdown:ok', 'poweroff:ok', 'start:ok', 'delete:ok', 'delete:ok',
    ]);
  });
});
