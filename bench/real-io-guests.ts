import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * 50 real QEMU guests on root's libvirtd for the I/O benchmark: transient (`virsh create`),
 * started paused (no guest CPU, ~35 MiB each), one raw disk and one tap each, so `domstats`
 * does what it does on a production node — QEMU's block statistics over QMP, the taps'
 * counters, the cgroup CPU time — for every VM. Named kfbench-io-<pid>-N; destroyed after.
 */
export interface RealGuests {
  names: string[];
  destroy(): void;
}

const VIRSH = ['-q', '-c', 'qemu:///system'];

export function realLibvirtAvailable(): boolean {
  return process.getuid?.() === 0 && existsSync('/run/libvirt/libvirt-sock') && existsSync('/usr/bin/qemu-system-x86_64');
}

export function startRealGuests(count: number): RealGuests {
  const prefix = `kfbench-io-${process.pid}-`;
  const dir = `/var/tmp/${prefix}files`;
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  const destroy = () => {
    for (const n of names) {
      try {
        execFileSync('virsh', [...VIRSH, 'destroy', n], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', destroy);
  try {
    for (let i = 0; i < count; i++) {
      const name = `${prefix}${i}`;
      const disk = join(dir, `${i}.raw`);
      writeFileSync(disk, '');
      truncateSync(disk, 1024 * 1024);
      const xml = join(dir, `${i}.xml`);
      writeFileSync(xml, `<domain type='qemu'><name>${name}</name><memory unit='MiB'>16</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='${disk}'/><target dev='vda' bus='virtio'/></disk>
<interface type='ethernet'><model type='virtio'/></interface><memballoon model='none'/></devices></domain>`);
      execFileSync('virsh', [...VIRSH, 'create', xml, '--paused'], { stdio: 'ignore', timeout: 60_000 });
      names.push(name);
    }
  } catch (e) {
    destroy();
    throw e;
  }
  return { names, destroy };
}
