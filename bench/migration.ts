/**
 * bench/migration: one VM (2 GiB-virtual qcow2 holding ~200 MiB of data, 256 MiB RAM)
 * live-migrated on the lab with both links shaped to 1 Gbit/s — by kvm-ferry (A→B),
 * then by plain `virsh migrate --live --copy-storage-all` with libvirt pre-creating
 * the destination disk (B→A) — in one run. Needs root and the test guest.
 *
 * The lab's managers use dataTransport: tls, so the kvm-ferry run is encrypted; a third
 * run repeats the plain virsh command with --tls (A→B) so TLS is judged against plain
 * with everything else equal.
 *
 * Last line: ferry_wall_s plain_wall_s wall_ratio dest_alloc_ratio plain_dest_alloc_ratio physical_ratio downtime_ms tls_wall_s tls_wall_ratio
 * Targets: dest_alloc_ratio ≤ 1.1, physical_ratio ≤ 1.3, wall_ratio ≤ 1.0, downtime_ms ≤ 300, tls_wall_ratio ≤ 1.3.
 */
import { appendFileSync } from 'node:fs';
import { http, inNode, lab, labNodes, LAB_STATE, meshLibvirtUri } from '../test/helpers/lab.js';

const RATE = '1gbit';
const BANDWIDTH_BPS = 1e9 / 8;
const VM = 'bench-mig';
const IMG = `/var/lib/kvm-ferry/images/${VM}.qcow2`;
const [A, B] = labNodes(2) as [ReturnType<typeof labNodes>[0], ReturnType<typeof labNodes>[0]];

const allocated = (node: string) => {
  const [blocks, size] = inNode(node, 'stat', '-c', '%b %B', IMG).trim().split(' ').map(Number);
  return blocks! * size!;
};
const say = (s: string) => process.stdout.write(`${s}\n`);

async function main() {
  lab('down');
  lab('up', '2');
  // The transport is measured as a KVM node takes it: pre-copy while the VM runs. The lab's
  // guests are emulated (TCG), which kvm-ferry pauses for the whole copy by default on
  // QEMU 7.2 (README "Emulated VMs are paused for their copy"); this guest is idle.
  for (const n of [A, B]) appendFileSync(`${LAB_STATE}/${n.name}/config.yaml`, 'convergence:\n  emulatedMemoryCopy: live\n');
  for (const n of [A, B]) lab('manager', n.name, 'start');
  try {
    // A bootable guest grown to 2 GiB virtual, with 200 MiB written far from the boot data.
    inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', IMG);
    inNode(A.name, 'qemu-img', 'resize', '-q', IMG, '2G');
    inNode(A.name, 'qemu-io', '-f', 'qcow2', '-c', 'write -q -P 0x5a 1G 200M', IMG);
    const made = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=180`, { name: VM, vcpus: 1, memoryMiB: 256, source: 'import', image: `${VM}.qcow2` });
    if (made.json.job?.state !== 'ok') throw new Error(`create failed: ${JSON.stringify(made.json)}`);
    await new Promise((r) => setTimeout(r, 5000));
    lab('shape', A.name, RATE);
    lab('shape', B.name, RATE);

    const srcAlloc = allocated(A.name);
    const t0 = Date.now();
    const r = await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate?wait=600`, { to: B.name });
    const ferryRequestS = (Date.now() - t0) / 1000;
    const job = r.json.job;
    if (job?.state !== 'ok') throw new Error(`kvm-ferry migration failed: ${JSON.stringify(r.json)}`);
    const ferryWallS = job.result.durationMs / 1000;
    const ferryDest = allocated(B.name);
    say(`kvm-ferry steps (ms): ${JSON.stringify(job.result.stepMs)}`);
    say(`kvm-ferry: job ${ferryWallS.toFixed(2)} s (request incl. pre-flight ${ferryRequestS.toFixed(2)} s), downtime ${job.result.downtimeMs} ms, moved ${(job.result.bytesMoved / 2 ** 20).toFixed(0)} MiB, source alloc ${(srcAlloc / 2 ** 20).toFixed(1)} MiB, destination alloc ${(ferryDest / 2 ** 20).toFixed(1)} MiB`);

    // Plain virsh back to A: libvirt creates the destination disk itself.
    const destUri = meshLibvirtUri(B, A);
    // libvirt pre-creates a missing destination disk only inside a storage pool (virt-install
    // made one for the image directory when the VM was created on A); refreshed, so the pool
    // no longer lists the disk kvm-ferry removed from A after its migration.
    const pools = inNode(A.name, 'virsh', '-q', '-c', 'qemu:///system', 'pool-list', '--name').split('\n').map((x) => x.trim()).filter(Boolean);
    if (!pools.length) throw new Error('no active storage pool on lab-a for the plain virsh run');
    for (const p of pools) inNode(A.name, 'virsh', '-q', '-c', 'qemu:///system', 'pool-refresh', p);
    const srcAllocB = allocated(B.name);
    const t1 = Date.now();
    inNode(B.name, 'virsh', '-c', 'qemu:///system', 'migrate', '--live', '--copy-storage-all', '--persistent', '--undefinesource',
      '--migrateuri', `tcp://${A.addr}`, '--disks-uri', `tcp://${A.addr}`, '--listen-address', A.addr, '--domain', VM, '--desturi', destUri);
    const plainWallS = (Date.now() - t1) / 1000;
    const plainDest = allocated(A.name);
    say(`plain virsh: ${plainWallS.toFixed(2)} s, source alloc ${(srcAllocB / 2 ** 20).toFixed(1)} MiB, destination alloc ${(plainDest / 2 ** 20).toFixed(1)} MiB`);

    // The same virsh command, encrypted, back to B (libvirt left its copy of the disk there: NBD overwrites it).
    const destUriB = destUri.replace(`@${A.addr}/`, `@${B.addr}/`);
    const t2 = Date.now();
    inNode(A.name, 'virsh', '-c', 'qemu:///system', 'migrate', '--live', '--copy-storage-all', '--persistent', '--undefinesource', '--tls',
      '--migrateuri', `tcp://${B.addr}`, '--disks-uri', `tcp://${B.addr}`, '--listen-address', B.addr, '--domain', VM, '--desturi', destUriB);
    const tlsWallS = (Date.now() - t2) / 1000;
    say(`virsh with --tls: ${tlsWallS.toFixed(2)} s`);

    const physicalS = (srcAlloc + 256 * 2 ** 20) / BANDWIDTH_BPS;
    const f = (n: number, d = 3) => n.toFixed(d);
    say(`ferry_wall_s=${f(ferryWallS, 2)} plain_wall_s=${f(plainWallS, 2)} wall_ratio=${f(ferryWallS / plainWallS)} dest_alloc_ratio=${f(ferryDest / srcAlloc)} plain_dest_alloc_ratio=${f(plainDest / srcAllocB)} physical_ratio=${f(ferryWallS / physicalS)} downtime_ms=${job.result.downtimeMs} tls_wall_s=${f(tlsWallS, 2)} tls_wall_ratio=${f(tlsWallS / plainWallS)}`);
  } finally {
    lab('down');
  }
}

main().catch((e) => {
  process.stderr.write(`bench/migration failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
