import '../helpers/lab-instance.js';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { http, inNode, lab, LAB_SCRIPT, LAB_STATE, labNodes, meshLibvirtUri, tryInNode, type LabNode } from '../helpers/lab.js';
import {
  blkSource, copyGuestDisk, counterOn, createImage, defineVm, domains, domstate, exists, followJob, GUEST, getJob, IMAGES, insertMedia, migrateCheck,
  nvramPath, OVMF_CODE, OVMF_VARS, readPattern, refusal, removeShapeFiles, removeVm, serialLog, sh, sha256, startMigration, virsh, writePattern, type MigrateBody, type VmShape,
} from '../helpers/lab-vm-shapes.js';

/**
 * The per-device migration plan (issue 11), end to end on the lab: VMs shaped the way
 * admins really build them (virsh define, attach-disk --persistent, change-media,
 * qemu-img, OVMF), moved through kvm-ferry's API, and checked by the bytes on the
 * destination's disks (qemu-io read -P, sha256) — not by the job's state alone.
 *
 * Three nodes: most cases use A and B; the "two migrations claim one disk path" case
 * needs two sources (A and B) migrating to one destination (C) at the same time.
 *
 * Rule checked for every move that succeeds: no source file disappears before the job
 * reaches its cleanup step (i.e. before the destination was verified), and afterwards
 * exactly the files the plan copied are gone from the source (never an ISO, never
 * kernel/initrd/firmware files).
 */
const execFileP = promisify(execFile);
const [A, B, C] = labNodes(3) as [LabNode, LabNode, LabNode];
const img = (name: string) => `${IMAGES}/${name}`;

async function moveOk(from: LabNode, vm: string, body: MigrateBody, watch: string[]) {
  const started = await startMigration(from, vm, body);
  expect(started.status, refusal(started)).toBe(202);
  const followed = await followJob(from, started.jobId!, watch);
  expect(followed.job.state, `${followed.job.message}\n${followed.job.detail ?? ''}`).toBe('ok');
  expect(followed.earlyDeletions, 'source files deleted before the destination was verified').toEqual([]);
  return followed.job;
}

const sorted = (a: unknown) => [...((a as string[] | undefined) ?? [])].sort();

async function expectRefused(from: LabNode, vm: string, body: MigrateBody) {
  const r = await startMigration(from, vm, body);
  expect(r.status, JSON.stringify(r.json)).toBe(409);
  expect(r.json.error.message).toMatch(new RegExp(`^Migration of ${vm} to ${body.to} refused: `));
  return r.json.error.message as string;
}

beforeAll(async () => {
  requireRealLibvirt();
  // What this file needs beyond the other lab tests (scripts/install-pkgs.sh --test installs both).
  const missing = [OVMF_CODE, OVMF_VARS, '/usr/bin/strace'].filter((f) => !existsSync(f));
  if (missing.length) throw new Error(`END-TO-END TESTS CANNOT RUN: ${missing.join(', ')} missing (packages ovmf, strace). Run scripts/install-pkgs.sh --test as root.`);
  lab('down');
  lab('up', '3', '--with-manager');
  await waitFor('the managers to answer', 60_000, async () => {
    const ok = await Promise.all([A, B, C].map((n) => http(n.url, 'GET', '/healthz').then((r) => r.status === 200, () => false)));
    return ok.every(Boolean);
  });
  for (const n of [A, B, C]) inNode(n.name, 'mkdir', '-p', '/var/lib/kvm-ferry/iso', '/var/lib/kvm-ferry/boot');
}, 300_000);

afterAll(() => {
  lab('down');
  removeShapeFiles();
  restoreLabInstanceEnv();
});

describe('1 + 5. two data disks (qcow2 + raw) and an empty CD-ROM tray', () => {
  const VM = 'dev-two';
  const sys = img(`${VM}.qcow2`);
  const q = img(`${VM}-data.qcow2`);
  const r = img(`${VM}-data.raw`);
  let liveCheck: Awaited<ReturnType<typeof migrateCheck>>;
  let offlineCheck: Awaited<ReturnType<typeof migrateCheck>>;

  it('moves live to B: both data disks hold their bytes there, the guest keeps counting, the source files are gone', async () => {
    copyGuestDisk(A.name, sys);
    createImage(A.name, q, 'qcow2', 64);
    createImage(A.name, r, 'raw', 64);
    writePattern(A.name, 'qcow2', q, 0x42, 0, 16);
    writePattern(A.name, 'qcow2', q, 0x43, 40, 4);
    writePattern(A.name, 'raw', r, 0x24, 0, 16);
    writePattern(A.name, 'raw', r, 0x25, 48, 4);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }], cdroms: [{ target: 'hdc', path: null }] });
    virsh(A.name, 'attach-disk', VM, q, 'vdb', '--driver', 'qemu', '--subdriver', 'qcow2', '--persistent');
    virsh(A.name, 'start', VM);
    // Hot-plugged into the running VM, and into its definition.
    virsh(A.name, 'attach-disk', VM, r, 'vdc', '--driver', 'qemu', '--subdriver', 'raw', '--persistent');
    expect(blkSource(A.name, VM, 'vdc')).toBe(r);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);

    liveCheck = await migrateCheck(A, VM, { to: B.name, mode: 'live' });
    expect(liveCheck.go, JSON.stringify(liveCheck.json)).toBe(true);
    expect(liveCheck.decisions).toMatchObject({ 'disk:vda': 'copy', 'disk:vdb': 'copy', 'disk:vdc': 'copy', 'cdrom:hdc': 'as-is' });
    expect(liveCheck.item('disk:vdb')).toMatchObject({ path: q, format: 'qcow2', target: 'vdb' });
    expect(liveCheck.item('disk:vdc')).toMatchObject({ path: r, format: 'raw', target: 'vdc' });

    const before = counterOn(A.name, VM);
    const job = await moveOk(A, VM, { to: B.name, mode: 'live' }, [sys, q, r]);
    expect(sorted(job.result?.sourceRemoved)).toEqual(sorted([sys, q, r]));
    for (const f of [sys, q, r]) expect(exists(A.name, f), `${f} on A`).toBe(false);
    expect(domains(A.name)).not.toContain(VM);

    expect(domstate(B.name, VM)).toMatch(/^running/);
    await waitFor('the counter to continue on B', 30_000, () => counterOn(B.name, VM) > before + 1);
    const firstOnB = /kvm-ferry-counter (\d+)/.exec(tryInNode(B.name, 'cat', serialLog(VM)).out)?.[1];
    expect(Number(firstOnB), 'B did not boot the guest again').toBeGreaterThanOrEqual(before);

    // SIGTERM: QEMU flushes its qcow2 metadata; then read without -U (no one holds the files).
    virsh(B.name, 'destroy', VM);
    for (const [fmt, f, p, off, len] of [['qcow2', q, 0x42, 0, 16], ['qcow2', q, 0x43, 40, 4], ['qcow2', q, 0, 16, 24], ['raw', r, 0x24, 0, 16], ['raw', r, 0x25, 48, 4], ['raw', r, 0, 16, 32]] as const) {
      const read = readPattern(B.name, fmt, f, p, off, len);
      expect(read.ok, read.out).toBe(true);
    }
    expect(inNode(B.name, 'qemu-img', 'check', q)).toMatch(/No errors were found/);
  });

  it('moves it back offline (shut off) to A: the same bytes, the files gone from B', async () => {
    offlineCheck = await migrateCheck(B, VM, { to: A.name });
    expect(offlineCheck.json.mode ?? offlineCheck.json.plan?.mode).toBe('offline');
    expect(offlineCheck.go, JSON.stringify(offlineCheck.json)).toBe(true);
    expect(offlineCheck.decisions).toMatchObject({ 'disk:vda': 'copy', 'disk:vdb': 'copy', 'disk:vdc': 'copy', 'cdrom:hdc': 'as-is' });
    const job = await moveOk(B, VM, { to: A.name }, [sys, q, r]);
    expect(sorted(job.result?.sourceRemoved)).toEqual(sorted([sys, q, r]));
    for (const f of [sys, q, r]) expect(exists(B.name, f), `${f} on B`).toBe(false);
    expect(domstate(A.name, VM)).toMatch(/^shut off/);
    for (const [fmt, f, p, off, len] of [['qcow2', q, 0x42, 0, 16], ['qcow2', q, 0x43, 40, 4], ['raw', r, 0x24, 0, 16], ['raw', r, 0x25, 48, 4]] as const) {
      const read = readPattern(A.name, fmt, f, p, off, len);
      expect(read.ok, read.out).toBe(true);
    }
    // And it boots there.
    virsh(A.name, 'start', VM);
    await waitFor(`${VM} to boot on A`, 60_000, () => counterOn(A.name, VM) >= 1);
  });

  it('5. the empty CD-ROM tray moved as it is, live and offline: still an empty drive', () => {
    expect(liveCheck.item('cdrom:hdc')).toMatchObject({ decision: 'as-is', path: null });
    expect(offlineCheck.item('cdrom:hdc')).toMatchObject({ decision: 'as-is', path: null });
    expect(blkSource(A.name, VM, 'hdc')).toBe('-');
    expect(blkSource(A.name, VM, 'hdc', true)).toBe('-');
    removeVm(A.name, VM, [sys, q, r]);
  });
});

describe('2. a read-only data disk (and a disk only in the persistent definition)', () => {
  const VM = 'dev-ro';
  const sys = img(`${VM}.qcow2`);
  const ro = img(`${VM}-ro.raw`);
  const later = img(`${VM}-next-boot.qcow2`);

  it('is copied before the live move: B holds the 16 MiB of 0x42 (not an empty sparse image), A\'s file is removed only after', async () => {
    copyGuestDisk(A.name, sys);
    createImage(A.name, ro, 'raw', 32);
    writePattern(A.name, 'raw', ro, 0x42, 0, 16);
    const roSum = sha256(A.name, ro);
    createImage(A.name, later, 'qcow2', 32);
    writePattern(A.name, 'qcow2', later, 0x44, 8, 8);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }] });
    virsh(A.name, 'attach-disk', VM, ro, 'vdb', '--driver', 'qemu', '--subdriver', 'raw', '--mode', 'readonly', '--persistent');
    virsh(A.name, 'start', VM);
    // The issue's shape: attached --config to the running VM, so only its next boot sees it.
    virsh(A.name, 'attach-disk', VM, later, 'vdc', '--driver', 'qemu', '--subdriver', 'qcow2', '--config');
    expect(blkSource(A.name, VM, 'vdc')).toBeNull();
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);

    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live' });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('disk:vdb')).toMatchObject({ decision: 'copy-first', path: ro, format: 'raw' });
    expect(check.item('disk:vdc')).toMatchObject({ decision: 'copy-first', path: later, format: 'qcow2' });
    expect(check.decisions['disk:vda']).toBe('copy');

    const job = await moveOk(A, VM, { to: B.name, mode: 'live' }, [sys, ro, later]);
    expect(domstate(B.name, VM)).toMatch(/^running/);
    // The bytes, while the VM runs there (raw, read-only: nothing is cached) and by checksum.
    const read = readPattern(B.name, 'raw', ro, 0x42, 0, 16, true);
    expect(read.ok, read.out).toBe(true);
    expect(sha256(B.name, ro)).toBe(roSum);
    // The next-boot disk: in B's persistent definition, its bytes there (no QEMU has it open).
    expect(blkSource(B.name, VM, 'vdc', true)).toBe(later);
    for (const [p, off, len] of [[0x44, 8, 8], [0, 0, 8], [0, 16, 16]] as const) {
      const r = readPattern(B.name, 'qcow2', later, p, off, len);
      expect(r.ok, r.out).toBe(true);
    }
    expect(sorted(job.result?.sourceRemoved)).toEqual(sorted([sys, ro, later]));
    for (const f of [sys, ro, later]) expect(exists(A.name, f), `${f} on A`).toBe(false);
    removeVm(B.name, VM, [sys, ro, later]);
  });
});

describe('3. a shareable disk', () => {
  const VM = 'dev-shared';
  const sys = img(`${VM}.qcow2`);
  const shared = img(`${VM}-shared.raw`);

  it('is refused in pre-flight, the request is 409, and nothing changes on either node', async () => {
    copyGuestDisk(A.name, sys);
    createImage(A.name, shared, 'raw', 32);
    writePattern(A.name, 'raw', shared, 0x42, 0, 16);
    const sum = sha256(A.name, shared);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }] });
    virsh(A.name, 'attach-disk', VM, shared, 'vdb', '--driver', 'qemu', '--subdriver', 'raw', '--cache', 'none', '--mode', 'shareable', '--persistent');
    virsh(A.name, 'start', VM);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);

    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live' });
    expect(check.status).toBe(200);
    expect(check.go).toBe(false);
    expect(check.json.plan?.go).toBe(false);
    const vdb = check.item('disk:vdb');
    expect(vdb.decision).toBe('refuse');
    expect(vdb.fix, 'a refusal says what to do').toBeTruthy();
    expect(check.json.checks.find((c: { id: string }) => c.id === 'devices')).toMatchObject({ ok: false });

    await expectRefused(A, VM, { to: B.name, mode: 'live' });
    const before = counterOn(A.name, VM);
    await waitFor(`${VM} to keep counting on A`, 20_000, () => counterOn(A.name, VM) > before);
    expect(domstate(A.name, VM)).toMatch(/^running/);
    expect(sha256(A.name, shared)).toBe(sum);
    expect(exists(A.name, sys)).toBe(true);
    expect(domains(B.name)).not.toContain(VM);
    for (const f of [sys, shared]) expect(exists(B.name, f), `${f} on B`).toBe(false);
    removeVm(A.name, VM, [sys, shared]);
  });
});

describe('4. a CD-ROM whose ISO is only on the source', () => {
  const VM = 'dev-cd';
  const sys = img(`${VM}.qcow2`);
  const iso = '/var/lib/kvm-ferry/iso/dev-cd.iso';
  let isoSum = '';

  it('is refused with both fixes offered (eject for the move, copy the ISO there)', async () => {
    copyGuestDisk(A.name, sys);
    inNode(A.name, 'cp', `${GUEST}/guest.iso`, iso);
    isoSum = sha256(A.name, iso);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }], cdroms: [{ target: 'hdc', path: null }] });
    virsh(A.name, 'start', VM);
    await insertMedia(A.name, VM, 'hdc', iso);
    expect(blkSource(A.name, VM, 'hdc')).toBe(iso);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);

    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live' });
    expect(check.go).toBe(false);
    const cd = check.item('cdrom:hdc');
    expect(cd).toMatchObject({ decision: 'refuse', path: iso });
    expect(cd.fixes).toEqual(expect.arrayContaining(['ejectMedia', 'copyMedia']));
    expect(cd.fix).toBeTruthy();
    expect(check.json.checks.find((c: { id: string }) => c.id === 'devices')).toMatchObject({ ok: false });
    await expectRefused(A, VM, { to: B.name, mode: 'live' });
    expect(domstate(A.name, VM)).toMatch(/^running/);
    expect(domains(B.name)).not.toContain(VM);
  });

  it('moves live with ejectMedia: the tray is empty on B, the ISO stays on A and is not copied to B', async () => {
    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live', ejectMedia: true });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('cdrom:hdc')).toMatchObject({ decision: 'eject', path: iso });
    const before = counterOn(A.name, VM);
    const job = await moveOk(A, VM, { to: B.name, mode: 'live', ejectMedia: true }, [sys, iso]);
    expect(sorted(job.result?.sourceRemoved)).toEqual([sys]);
    expect(domstate(B.name, VM)).toMatch(/^running/);
    await waitFor('the counter to continue on B', 30_000, () => counterOn(B.name, VM) > before);
    expect(blkSource(B.name, VM, 'hdc')).toBe('-');
    expect(blkSource(B.name, VM, 'hdc', true)).toBe('-');
    expect(exists(A.name, iso)).toBe(true);
    expect(sha256(A.name, iso)).toBe(isoSum);
    expect(exists(B.name, iso)).toBe(false);
  });

  it('moves back live with the same ISO present on both nodes: decision present, the ISO stays inserted and is kept on both', async () => {
    inNode(B.name, 'cp', `${GUEST}/guest.iso`, iso);
    expect(sha256(B.name, iso)).toBe(isoSum);
    await insertMedia(B.name, VM, 'hdc', iso);
    const check = await migrateCheck(B, VM, { to: A.name, mode: 'live' });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('cdrom:hdc')).toMatchObject({ decision: 'present', path: iso });
    const job = await moveOk(B, VM, { to: A.name, mode: 'live' }, [sys, iso]);
    expect(sorted(job.result?.sourceRemoved)).toEqual([sys]);
    expect(domstate(A.name, VM)).toMatch(/^running/);
    expect(blkSource(A.name, VM, 'hdc')).toBe(iso);
    expect(blkSource(A.name, VM, 'hdc', true)).toBe(iso);
    for (const n of [A, B]) expect(sha256(n.name, iso), `ISO on ${n.name}`).toBe(isoSum);
  });

  it('moves live with copyMedia when B lacks the ISO: decision carry, the same ISO inserted on B, kept on A', async () => {
    inNode(B.name, 'rm', '-f', iso);
    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live', copyMedia: true });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('cdrom:hdc')).toMatchObject({ decision: 'carry', path: iso });
    const job = await moveOk(A, VM, { to: B.name, mode: 'live', copyMedia: true }, [sys, iso]);
    expect(sorted(job.result?.sourceRemoved)).toEqual([sys]);
    expect(domstate(B.name, VM)).toMatch(/^running/);
    expect(blkSource(B.name, VM, 'hdc')).toBe(iso);
    for (const n of [A, B]) expect(sha256(n.name, iso), `ISO on ${n.name}`).toBe(isoSum);
    removeVm(B.name, VM, [sys, iso]);
    tryInNode(A.name, 'rm', '-f', iso);
  });
});

describe('6. direct kernel boot', () => {
  it('with kernel and initrd present identically on both nodes: moves live, the files stay on both', async () => {
    const VM = 'dev-kernel';
    const data = img(`${VM}.qcow2`);
    const kernel = `${GUEST}/vmlinuz`;
    const initrd = `${GUEST}/initrd.img`;
    createImage(A.name, data, 'qcow2', 32);
    writePattern(A.name, 'qcow2', data, 0x42, 0, 16);
    defineVm(A.name, { name: VM, kernel: { kernel, initrd, cmdline: 'console=ttyS0' }, disks: [{ path: data, format: 'qcow2', target: 'vda' }] });
    virsh(A.name, 'start', VM);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);
    const sums = [sha256(A.name, kernel), sha256(A.name, initrd)];

    const check = await migrateCheck(A, VM, { to: B.name, mode: 'live' });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('kernel')).toMatchObject({ decision: 'present', path: kernel });
    expect(check.item('initrd')).toMatchObject({ decision: 'present', path: initrd });
    const before = counterOn(A.name, VM);
    const job = await moveOk(A, VM, { to: B.name, mode: 'live' }, [data, kernel, initrd]);
    expect(sorted(job.result?.sourceRemoved)).toEqual([data]);
    await waitFor('the counter to continue on B', 30_000, () => counterOn(B.name, VM) > before);
    for (const n of [A, B]) expect([sha256(n.name, kernel), sha256(n.name, initrd)], `boot files on ${n.name}`).toEqual(sums);
    virsh(B.name, 'destroy', VM);
    const read = readPattern(B.name, 'qcow2', data, 0x42, 0, 16);
    expect(read.ok, read.out).toBe(true);
    removeVm(B.name, VM, [data]);
  });

  it('with kernel and initrd only on the source (/var/lib/kvm-ferry/boot): refused with the fix, nothing changes', async () => {
    const VM = 'dev-kboot';
    const data = img(`${VM}.qcow2`);
    const kernel = '/var/lib/kvm-ferry/boot/dev-kboot-vmlinuz';
    const initrd = '/var/lib/kvm-ferry/boot/dev-kboot-initrd.img';
    inNode(A.name, 'cp', `${GUEST}/vmlinuz`, kernel);
    inNode(A.name, 'cp', `${GUEST}/initrd.img`, initrd);
    createImage(A.name, data, 'qcow2', 32);
    defineVm(A.name, { name: VM, kernel: { kernel, initrd, cmdline: 'console=ttyS0' }, disks: [{ path: data, format: 'qcow2', target: 'vda' }] });
    virsh(A.name, 'start', VM);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);
    for (const mode of ['live', 'offline'] as const) {
      if (mode === 'offline') virsh(A.name, 'destroy', VM);
      const check = await migrateCheck(A, VM, { to: B.name, mode });
      expect(check.go, mode).toBe(false);
      for (const [id, path] of [['kernel', kernel], ['initrd', initrd]] as const) {
        const it = check.item(id);
        expect(it, `${mode} ${id}`).toMatchObject({ decision: 'refuse', path });
        expect(it.fix, `${mode} ${id}: the fix`).toBeTruthy();
      }
      await expectRefused(A, VM, { to: B.name, mode });
    }
    expect(domains(A.name)).toContain(VM);
    expect(domains(B.name)).not.toContain(VM);
    for (const f of [kernel, initrd, data]) {
      expect(exists(A.name, f), `${f} on A`).toBe(true);
      expect(exists(B.name, f), `${f} on B`).toBe(false);
    }
    removeVm(A.name, VM, [data, kernel, initrd]);
  });
});

/**
 * UEFI NVRAM, and what libvirt 9.0 / QEMU 7.2 do with it — found on this lab with plain
 * `virsh migrate --live --copy-storage-all --persistent --undefinesource` (no kvm-ferry):
 *
 * - A live migration does not copy the NVRAM *file*. QEMU migrates the pflash contents
 *   (the guest's view of the variable store) inside the migration stream, and the
 *   destination QEMU writes the whole flash back to its own nvram file after the switch-
 *   over (pflash post-load). So the destination's file ends byte-identical to what the
 *   source QEMU had in memory, which is the source's file (pflash writes go straight
 *   through to it). Evidence, checked again by the last test below: 4 KiB written into
 *   the source's nvram file *behind QEMU's back* while it runs do not arrive on the
 *   destination (its file equals the source file as it was before that write), and a
 *   stale file already at the destination path is overwritten entirely.
 * - libvirt leaves the source's nvram file behind after --undefinesource (it does not
 *   delete NVRAM on migration), and a destination path that does not exist is first
 *   created from the <nvram template>, then overwritten by QEMU.
 * - An offline migration (virsh migrate --offline) moves only the definition: the NVRAM
 *   must be carried by kvm-ferry (plan decision "carry").
 */
describe('7. a UEFI VM (OVMF) whose NVRAM changed before the move', () => {
  const VM = 'dev-uefi';
  const disk = img(`${VM}.qcow2`);
  const nv = nvramPath(VM);
  const shape: VmShape = { name: VM, uefi: { nvram: nv }, disks: [{ path: disk, format: 'qcow2', target: 'vda' }] };
  const atShell = (node: string) => tryInNode(node, 'cat', serialLog(VM)).out.split('Shell>').length - 1;
  let sumA = '';

  it('moves offline to B with the NVRAM byte-identical (sha256) and both disk bytes there', async () => {
    createImage(A.name, disk, 'qcow2', 64);
    writePattern(A.name, 'qcow2', disk, 0x42, 0, 16);
    defineVm(A.name, shape);
    // First boot: libvirt makes the NVRAM from the template, OVMF writes its variables.
    virsh(A.name, 'start', VM);
    await waitFor('OVMF to reach its shell on A', 120_000, () => atShell(A.name) >= 1);
    virsh(A.name, 'destroy', VM);
    expect(sha256(A.name, nv), 'OVMF changed the variables at boot').not.toBe(sha256(A.name, OVMF_VARS));
    // And a known pattern in the FTW spare area (0x70000, all 0xff in OVMF_VARS_4M.fd).
    sh(A.name, `head -c 4096 /dev/zero | tr '\\0' '\\132' | dd of=${nv} bs=4096 seek=${0x70000 / 4096} conv=notrunc status=none`);
    sumA = sha256(A.name, nv);

    const check = await migrateCheck(A, VM, { to: B.name });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('loader')).toMatchObject({ decision: 'present' });
    expect(check.item('nvram')).toMatchObject({ decision: 'carry', path: nv });
    expect(check.decisions['disk:vda']).toBe('copy');
    const job = await moveOk(A, VM, { to: B.name, mode: 'offline' }, [disk, nv]);
    expect(domstate(B.name, VM)).toMatch(/^shut off/);
    expect(sha256(B.name, nv)).toBe(sumA);
    const read = readPattern(B.name, 'qcow2', disk, 0x42, 0, 16);
    expect(read.ok, read.out).toBe(true);
    expect(sorted(job.result?.sourceRemoved)).toEqual(sorted([disk, nv]));
    for (const f of [disk, nv]) expect(exists(A.name, f), `${f} on A`).toBe(false);
  });

  it('boots on B from the carried NVRAM and moves live back to A: decision stream, A\'s NVRAM equals B\'s', async () => {
    virsh(B.name, 'start', VM);
    await waitFor('OVMF to reach its shell on B', 120_000, () => atShell(B.name) >= 1);
    // Quiet: the shell writes no variables.
    let sumB = '';
    await waitFor('the NVRAM on B to settle', 20_000, async () => {
      const s = sha256(B.name, nv);
      await new Promise((r) => setTimeout(r, 1500));
      sumB = sha256(B.name, nv);
      return s === sumB;
    });
    const check = await migrateCheck(B, VM, { to: A.name, mode: 'live' });
    expect(check.go, JSON.stringify(check.json)).toBe(true);
    expect(check.item('nvram')).toMatchObject({ decision: 'stream', path: nv });
    expect(check.item('loader')).toMatchObject({ decision: 'present' });
    const job = await moveOk(B, VM, { to: A.name, mode: 'live' }, [disk]);
    // libvirt leaves the source's (now stale) NVRAM behind; kvm-ferry removes it once A is verified.
    expect(sorted(job.result?.sourceRemoved)).toEqual(sorted([disk, nv]));
    for (const f of [disk, nv]) expect(exists(B.name, f), `${f} on B`).toBe(false);
    expect(domstate(A.name, VM)).toMatch(/^running/);
    expect(sha256(A.name, nv)).toBe(sumB);
  });

  it('libvirt fact, plain virsh: a live move carries the NVRAM in the stream, not the file', async () => {
    // A stale NVRAM at the destination path, and 4 KiB written behind the running QEMU's back on A.
    inNode(B.name, 'cp', OVMF_VARS, nv);
    sh(B.name, `head -c 4096 /dev/zero | tr '\\0' '\\245' | dd of=${nv} bs=4096 seek=${0x71000 / 4096} conv=notrunc status=none`);
    const inQemu = sha256(A.name, nv);
    sh(A.name, `head -c 4096 /dev/zero | tr '\\0' '\\133' | dd of=${nv} bs=4096 seek=${0x72000 / 4096} conv=notrunc status=none`);
    expect(sha256(A.name, nv)).not.toBe(inQemu);
    tryInNode(B.name, 'rm', '-f', disk);
    createImage(B.name, disk, 'qcow2', 64);
    const destUri = meshLibvirtUri(A, B);
    virsh(A.name, 'migrate', '--live', '--copy-storage-all', '--persistent', '--undefinesource',
      '--migrateuri', `tcp://${B.addr}`, '--disks-uri', `tcp://${B.addr}`, '--listen-address', B.addr, '--domain', VM, '--desturi', destUri);
    expect(domstate(B.name, VM)).toMatch(/^running/);
    expect(sha256(B.name, nv), "B's NVRAM is what A's QEMU had, not A's file").toBe(inQemu);
    expect(exists(A.name, nv), 'libvirt leaves the source NVRAM behind').toBe(true);
    removeVm(B.name, VM, [disk]);
    tryInNode(A.name, 'rm', '-f', nv, disk);
  });
});

describe('8. a VM with an internal snapshot', () => {
  const VM = 'dev-snap';
  const sys = img(`${VM}.qcow2`);

  it('is refused offline and live with the fix, and keeps its snapshot', async () => {
    copyGuestDisk(A.name, sys);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }] });
    virsh(A.name, 'snapshot-create-as', VM, 'before-upgrade');
    expect(inNode(A.name, 'qemu-img', 'snapshot', '-l', sys)).toContain('before-upgrade');
    for (const mode of ['offline', 'live'] as const) {
      if (mode === 'live') {
        virsh(A.name, 'start', VM);
        await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);
      }
      const check = await migrateCheck(A, VM, { to: B.name, mode });
      expect(check.go, mode).toBe(false);
      expect(check.item('snapshots')).toMatchObject({ decision: 'refuse' });
      expect(check.item('snapshots').fix).toBeTruthy();
      await expectRefused(A, VM, { to: B.name, mode });
    }
    expect(virsh(A.name, 'snapshot-list', VM, '--name').trim()).toBe('before-upgrade');
    expect(domstate(A.name, VM)).toMatch(/^running/);
    expect(domains(B.name)).not.toContain(VM);
    expect(exists(B.name, sys)).toBe(false);
    tryInNode(A.name, 'virsh', '-c', 'qemu:///system', 'snapshot-delete', VM, 'before-upgrade', '--metadata');
    removeVm(A.name, VM, [sys]);
  });
});

describe('9. two migrations to one node claiming the same disk path, started together', () => {
  const same = img('dev-same-data.qcow2');
  const vms = [
    { node: A, vm: 'dev-x', sys: img('dev-x.qcow2'), pattern: 0x11 },
    { node: B, vm: 'dev-y', sys: img('dev-y.qcow2'), pattern: 0x22 },
  ];

  it("one is refused or fails, the other's disk on the destination holds its bytes; the loser is intact at home", async () => {
    for (const v of vms) {
      copyGuestDisk(v.node.name, v.sys);
      createImage(v.node.name, same, 'qcow2', 64);
      writePattern(v.node.name, 'qcow2', same, v.pattern, 0, 16);
      defineVm(v.node.name, { name: v.vm, disks: [{ path: v.sys, format: 'qcow2', target: 'vda' }] });
      virsh(v.node.name, 'attach-disk', v.vm, same, 'vdb', '--driver', 'qemu', '--subdriver', 'qcow2', '--persistent');
      virsh(v.node.name, 'start', v.vm);
    }
    for (const v of vms) await waitFor(`${v.vm} to count on ${v.node.name}`, 60_000, () => counterOn(v.node.name, v.vm) >= 1);
    for (const v of vms) expect((await migrateCheck(v.node, v.vm, { to: C.name, mode: 'live' })).go, `${v.vm} alone would go`).toBe(true);

    const started = await Promise.all(vms.map((v) => startMigration(v.node, v.vm, { to: C.name, mode: 'live' })));
    const ended = await Promise.all(started.map(async (s, i) => {
      if (s.status === 409) return { ...vms[i]!, ok: false, message: s.json.error.message as string };
      expect(s.status, JSON.stringify(s.json)).toBe(202);
      const job = await getJob(vms[i]!.node, s.jobId!, 180);
      return { ...vms[i]!, ok: job.state === 'ok', message: job.message as string };
    }));
    // eslint-disable-next-line no-console
    console.log(`same-path race: ${ended.map((e) => `${e.vm}: ${e.message}`).join(' | ')}`);
    const winners = ended.filter((e) => e.ok);
    expect(winners.length, JSON.stringify(ended.map((e) => `${e.vm}: ${e.message}`))).toBe(1);
    const win = winners[0]!;
    const lose = ended.find((e) => !e.ok)!;
    expect(lose.message).toMatch(new RegExp(`^Migration of ${lose.vm} to ${C.name} (refused|failed|was)`));

    expect(domstate(C.name, win.vm)).toMatch(/^running/);
    expect(domains(C.name)).not.toContain(lose.vm);
    virsh(C.name, 'destroy', win.vm);
    const onC = readPattern(C.name, 'qcow2', same, win.pattern, 0, 16);
    expect(onC.ok, onC.out).toBe(true);
    expect(inNode(C.name, 'qemu-img', 'check', same)).toMatch(/No errors were found/);

    expect(domstate(lose.node.name, lose.vm)).toMatch(/^running/);
    const home = readPattern(lose.node.name, 'qcow2', same, lose.pattern, 0, 16, true);
    expect(home.ok, home.out).toBe(true);
    expect(exists(lose.node.name, lose.sys)).toBe(true);
    removeVm(C.name, win.vm, [same, win.sys]);
    removeVm(lose.node.name, lose.vm, [same, lose.sys]);
    removeVm(win.node.name, win.vm, [same, win.sys]);
  });
});

describe('10. virsh migrate killed (kill -9) right after the switch-over', () => {
  const VM = 'dev-kill';
  const sys = img(`${VM}.qcow2`);
  const data = img(`${VM}-data.raw`);

  // This is about a destination that libvirt already resumed: the live pre-copy path (a KVM
  // node's). On this QEMU an emulated guest is paused for its whole copy by default, and then
  // libvirt never resumes the destination, so A's manager copies live for this case only.
  beforeAll(() => {
    lab('manager', A.name, 'kill');
    appendFileSync(`${LAB_STATE}/${A.name}/config.yaml`, 'convergence:\n  emulatedMemoryCopy: live\n');
    lab('manager', A.name, 'start');
  }, 90_000);

  it('keeps the destination running, does not resume the source, deletes no disk, and settles the job', async () => {
    copyGuestDisk(A.name, sys);
    createImage(A.name, data, 'raw', 32);
    writePattern(A.name, 'raw', data, 0x42, 0, 16);
    defineVm(A.name, { name: VM, disks: [{ path: sys, format: 'qcow2', target: 'vda' }, { path: data, format: 'raw', target: 'vdb' }] });
    virsh(A.name, 'start', VM);
    await waitFor(`${VM} to count on A`, 60_000, () => counterOn(A.name, VM) >= 1);
    const managerPid = inNode(A.name, 'cat', '/run/kvm-ferry-manager.pid').trim();

    // Between libvirt's Finish on B (the VM runs there) and virsh asking A to confirm there
    // are only milliseconds. Two things make the kill land in between, every time:
    // - strace delays each recvfrom() of virsh by 300 ms (that is its libssh2 connection to
    //   B; the local socket to A's libvirtd uses read()), so virsh learns of Finish's answer
    //   late, and asks A to confirm late;
    // - the kill comes from inside B, on B's own lifecycle event "Resumed Migrated".
    // PIDs are shared by every lab instance: the manager's own child is killed by PID,
    // never by pattern.
    lab('shape', A.name, '100mbit');
    let tracer: ChildProcess | null = null;
    let jobId = 0;
    let killer = '';
    let counterAtKill = 0;
    try {
      const started = await startMigration(A, VM, { to: B.name, mode: 'live' });
      expect(started.status, refusal(started)).toBe(202);
      jobId = started.jobId!;
      const virshPid = await waitFor('the manager to run virsh migrate', 30_000, () => {
        const r = tryInNode(A.name, 'pgrep', '-P', managerPid, '-f', '^virsh .* migrate ');
        return r.ok ? r.out.trim() : null;
      });
      expect(virshPid, 'one virsh migrate child of the manager').toMatch(/^\d+$/);
      // Connected and copying (the SSH handshake to B is not slowed down).
      await waitFor('the copy to move data', 60_000, async () => {
        const j = await getJob(A, jobId);
        if (j.state !== 'running') throw new Error(`the migration ended before the kill: ${JSON.stringify(j)}`);
        return Number(j.progress?.dataProcessedBytes ?? 0) > 0;
      });
      tracer = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-p', virshPid, '-e', 'trace=recvfrom', '-e', 'inject=recvfrom:delay_enter=300ms'], { stdio: 'ignore' });
      // virsh event runs in a process substitution, so the script ends (and ends it) right after the kill.
      const watch = `exec 3< <(exec stdbuf -oL virsh -q -c qemu:///system event --domain ${VM} --event lifecycle --loop --timeout 120); ev=$!
        while read -r l <&3; do case "$l" in *Resumed*)
          if kill -9 ${virshPid}; then echo "killed after: $l"; else echo "too late: $l"; fi; kill $ev; exit 0;; esac; done; kill $ev 2>/dev/null; echo "no Resumed event"`;
      killer = (await execFileP('bash', [LAB_SCRIPT, 'exec', B.name, 'bash', '-c', watch], { encoding: 'utf8', timeout: 150_000 })).stdout.trim();
      counterAtKill = counterOn(A.name, VM);
    } finally {
      if (tracer && tracer.exitCode === null) tracer.kill('SIGKILL');
      lab('shape', A.name, 'off');
    }
    // Too late if virsh had already ended: the test would prove nothing.
    expect(killer, 'virsh migrate was still running when the VM resumed on B').toMatch(/^killed after: .*Resumed Migrated/);

    const done = await getJob(A, jobId, 150);
    expect(done.state, JSON.stringify(done)).not.toBe('running');
    const states = `job: ${done.state}: ${done.message}; A: ${domstate(A.name, VM)}; B: ${domstate(B.name, VM)}`;
    // eslint-disable-next-line no-console
    console.log(`after the kill: ${states} (settled ${done.durationMs} ms after the job started; ${killer})`);
    // The destination keeps running the guest; the source never runs it again.
    expect(domstate(B.name, VM), states).toMatch(/^running/);
    const onB = counterOn(B.name, VM);
    await waitFor('the counter to continue on B', 30_000, () => counterOn(B.name, VM) > onB + 1);
    expect(domstate(A.name, VM), `the source must not be resumed (${states})`).not.toMatch(/^running/);
    expect(counterOn(A.name, VM), 'the guest never counted on A again').toBeLessThanOrEqual(counterAtKill + 1);
    // No disk deleted on either side.
    for (const f of [sys, data]) {
      expect(exists(A.name, f), `${f} on A`).toBe(true);
      expect(exists(B.name, f), `${f} on B`).toBe(true);
    }
    const read = readPattern(B.name, 'raw', data, 0x42, 0, 16, true);
    expect(read.ok, read.out).toBe(true);
    // Settled: moved, or needs attention with both sides' states in the sentence.
    if (done.state === 'ok') {
      expect(done.message).toMatch(new RegExp(`${VM} (migrated|moved).*${B.name}`));
    } else {
      expect(done.message).toMatch(/attention/i);
      expect(done.message).toContain(A.name);
      expect(done.message).toContain(B.name);
      expect(done.message).toMatch(/running/);
      expect(done.message).toMatch(/paused/);
    }
    removeVm(A.name, VM, [sys, data]);
    removeVm(B.name, VM, [sys, data]);
  });
});
