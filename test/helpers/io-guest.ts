import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * An initramfs for the test guest that does disk and network I/O. The stock test guest runs
 * from RAM with no drivers (its initramfs has no modules), so this one is the stock initrd
 * with a second cpio archive appended — the kernel unpacks both, later files win — holding
 * the virtio modules of the guest's own kernel (from the same Debian package build-guest.sh
 * takes the kernel from, fetched once with apt-get into the cache) and an /init that loads
 * them, then writes its disk (dd, synced) and sends on its interface (ping → ARP) for ever.
 */
// In load order: each after the modules it needs (virtio_ring exports what virtio uses).
const MODULES = ['virtio_ring', 'virtio', 'virtio_pci_legacy_dev', 'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk', 'failover', 'net_failover', 'virtio_net'];

const INIT = `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in ${MODULES.join(' ')}; do insmod /kfio/$m.ko >/dev/ttyS0 2>&1 || echo "kfio-guest insmod $m failed" >/dev/ttyS0; done
sleep 1
echo "kfio-guest disks: $(ls /sys/block) nets: $(ls /sys/class/net)" >/dev/ttyS0
ip link set eth0 up 2>/dev/null
ip addr add 10.213.0.2/24 dev eth0 2>/dev/null
ping -i 1 10.213.0.1 >/dev/null 2>&1 &
n=1
while :; do
  dd if=/dev/urandom of=/dev/vda bs=64k count=4 conv=fsync 2>/dev/null
  echo "kfio-write $n" >/dev/ttyS0
  n=$((n + 1))
  sleep 1
done
`;

export function ioGuestInitrd(guestDir: string, cacheDir = '/var/cache/kvm-ferry/guest-io'): string {
  const manifest = readFileSync(join(guestDir, 'manifest.txt'), 'utf8');
  const pkg = /^kernel_package:\s*(\S+)/m.exec(manifest)?.[1];
  const release = /^kernel_release:\s*(\S+)/m.exec(manifest)?.[1];
  if (!pkg || !release || !/^linux-image-[0-9][\w.-]*-amd64$/.test(pkg)) throw new Error(`${guestDir}/manifest.txt names no kernel package; rebuild the guest with scripts/build-guest.sh`);
  const out = join(cacheDir, `initrd-${release}.img`);
  if (existsSync(out)) return out;
  mkdirSync(cacheDir, { recursive: true });
  const stage = mkdtempSync(join(cacheDir, 'stage-'));
  try {
    execFileSync('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', pkg], { cwd: stage, stdio: 'pipe', timeout: 300_000 });
    const deb = readdirSync(stage).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    const tree = join(stage, 'tree');
    mkdirSync(tree);
    const tar = execFileSync('dpkg-deb', ['--fsys-tarfile', join(stage, deb)], { maxBuffer: 512 * 1024 * 1024, timeout: 120_000 });
    // GNU tar's * matches across '/', so one pattern per module finds it at any depth.
    execFileSync('tar', ['-x', '-C', tree, '--wildcards', ...MODULES.map((m) => `./lib/modules/${release}/kernel/*/${m}.ko`)], { input: tar, stdio: ['pipe', 'pipe', 'pipe'], timeout: 120_000 });
    const root = join(stage, 'root');
    mkdirSync(join(root, 'kfio'), { recursive: true });
    const found = execFileSync('find', [tree, '-name', '*.ko'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const m of MODULES) {
      const f = found.find((p) => p.endsWith(`/${m}.ko`));
      if (!f) throw new Error(`module ${m}.ko is not in ${pkg}`);
      copyFileSync(f, join(root, 'kfio', `${m}.ko`));
    }
    writeFileSync(join(root, 'init'), INIT, { mode: 0o755 });
    const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: root, encoding: 'utf8' });
    const cpio = execFileSync('cpio', ['--create', '--format=newc', '--owner=0:0', '--quiet'], { cwd: root, input: list, maxBuffer: 64 * 1024 * 1024 });
    const extra = execFileSync('gzip', ['-9', '-n'], { input: cpio, maxBuffer: 64 * 1024 * 1024 });
    const base = readFileSync(join(guestDir, 'initrd.img'));
    writeFileSync(join(stage, 'initrd.img'), Buffer.concat([base, extra]));
    renameSync(join(stage, 'initrd.img'), out);
    return out;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
