import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST_DIR, removeDomains, requireRealLibvirt, virsh, waitFor } from '../helpers/lab-prereqs.js';
import { LibvirtConnection } from '../../src/adapters/libvirt/connection.js';
import { QemuRss } from '../../src/adapters/host/qemu-rss.js';
import { openStatsDatabase } from '../../src/adapters/db/stats-db.js';
import { StatsWriter } from '../../src/adapters/db/stats-writer.js';
import { LibvirtSampler } from '../../stats-daemon/libvirt-sampler.js';
import { makeIoSource } from '../../stats-daemon/make-sampler.js';
import { StatsDaemon } from '../../stats-daemon/daemon.js';
import { silentLogger } from '../../src/log.js';
import { api, startTestApp, type TestApp } from '../helpers/test-app.js';
import { ioGuestInitrd } from '../helpers/io-guest.js';
import type { Db } from '../../src/adapters/db/database.js';

/**
 * Disk and network I/O of real QEMU guests (TCG, root's libvirtd; one node is enough),
 * through the stats daemon's default sampler and the manager's API (`points.io`):
 *  - `idle`: BIOS-boots the stock test guest from a qcow2 overlay — SeaBIOS and syslinux read
 *    the kernel and initrd from it (disk read > 0), then it runs from RAM and writes nothing
 *    (disk write = 0; no interface, network 0);
 *  - `writer`: the test guest's kernel with test/helpers/io-guest.ts's initramfs (the virtio
 *    modules loaded): it writes its disk with dd every second and pings an absent address
 *    on its tap (ARP requests: network out > 0).
 */
const prefix = `kfio-${randomBytes(3).toString('hex')}-`;
const root = `/var/lib/kvm-ferry-e2e/${prefix.slice(0, -1)}`;
const idleVm = `${prefix}idle`;
const writerVm = `${prefix}writer`;
let app: TestApp;
let db: Db;
let daemon: StatsDaemon;
let ticker: NodeJS.Timeout | null = null;

const serial = (name: string) => (existsSync(join(root, `${name}-serial.log`)) ? readFileSync(join(root, `${name}-serial.log`), 'utf8') : '');

function domainXml(name: string, kind: 'idle' | 'writer'): string {
  const disk = kind === 'idle'
    ? `<disk type="file" device="disk"><driver name="qemu" type="qcow2"/><source file="${root}/${name}.qcow2"/><target dev="vda" bus="virtio"/></disk>`
    : `<disk type="file" device="disk"><driver name="qemu" type="raw"/><source file="${root}/${name}.raw"/><target dev="vda" bus="virtio"/></disk>`;
  const nic = kind === 'writer' ? '<interface type="ethernet"><model type="virtio"/></interface>' : '';
  const os = kind === 'idle' ? '<boot dev="hd"/>' : `<kernel>${root}/vmlinuz</kernel><initrd>${root}/initrd-io.img</initrd><cmdline>console=ttyS0</cmdline>`;
  return `<domain type="qemu"><name>${name}</name><memory unit="MiB">128</memory><vcpu>1</vcpu>
    <os><type arch="x86_64" machine="pc">hvm</type>${os}</os>
    <on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>
    <devices>${disk}${nic}<serial type="file"><source path="${root}/${name}-serial.log"/><target port="0"/></serial><memballoon model="none"/></devices></domain>`;
}

beforeAll(async () => {
  requireRealLibvirt();
  mkdirSync(root, { recursive: true });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(GUEST_DIR, 'guest.qcow2'), join(root, `${idleVm}.qcow2`)]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'raw', join(root, `${writerVm}.raw`), '16M']);
  // Own copies: libvirt relabels a guest's kernel and initrd while it runs.
  copyFileSync(join(GUEST_DIR, 'vmlinuz'), join(root, 'vmlinuz'));
  copyFileSync(ioGuestInitrd(GUEST_DIR), join(root, 'initrd-io.img'));
  for (const imageDir of ['images', 'isos']) mkdirSync(join(root, imageDir), { recursive: true });
  app = await startTestApp({ uri: 'qemu:///system', imageDir: join(root, 'images'), isoDir: join(root, 'isos'), dataDir: join(root, 'data') });
  db = openStatsDatabase(join(root, 'data'));
  // What the daemon runs in production: the statistics addon (stats.test.ts covers the kept-virsh fallback).
  const io = makeIoSource('qemu:///system', 10_000);
  if (io.kind !== 'native') throw new Error('the statistics addon is not built (scripts/build-native.sh); the daemon would fall back to virsh');
  daemon = new StatsDaemon(new LibvirtSampler(new LibvirtConnection('qemu:///system'), new QemuRss(), io), new StatsWriter(db, app.config.stats), silentLogger);
  // The daemon ticks from before the guests start, so the boot's reads and the writer's first bytes fall after a first sighting.
  await daemon.tick(Date.now());
  let busy = false;
  ticker = setInterval(() => {
    if (busy) return;
    busy = true;
    void daemon.tick(Date.now()).finally(() => (busy = false));
  }, 2000);
  for (const [name, boot] of [[idleVm, 'idle'], [writerVm, 'writer']] as const) {
    const xml = join(root, `${name}.xml`);
    writeFileSync(xml, domainXml(name, boot));
    virsh('define', xml);
    // Paused until the daemon has seen it twice: every byte the boot reads falls after a first sighting.
    virsh('start', name, '--paused');
  }
  await waitFor('two daemon ticks that see both paused guests', 60_000, async () => {
    for (const vm of [idleVm, writerVm]) if (((await points(vm)).io.diskRdBytes ?? []).filter((v) => v !== null).length < 1) return false;
    return true;
  });
  for (const name of [idleVm, writerVm]) virsh('resume', name);
}, 150_000);

afterAll(async () => {
  if (ticker) clearInterval(ticker);
  removeDomains(prefix);
  await daemon?.close();
  db?.close();
  await app?.close();
  rmSync(root, { recursive: true, force: true });
});

interface IoPoints { t: number[]; io: Record<string, (number | null)[]> }

async function points(vm: string): Promise<IoPoints> {
  const r = await api(app, 'GET', `/api/nodes/alpha/vms/${vm}/stats?range=1h`);
  expect(r.status, r.text).toBe(200);
  return r.json.points as IoPoints;
}

const sum = (xs: (number | null)[] | undefined) => (xs ?? []).reduce<number>((a, v) => a + (v ?? 0), 0);

describe('disk and network I/O of real guests, through the daemon and the API', () => {
  it('a guest booting from its disk shows disk reads and no writes (0 measured, not null)', async () => {
    await waitFor(`${idleVm} to boot from its disk (serial: ${serial(idleVm).slice(-300)})`, 150_000, () => /kvm-ferry-counter 2 /.test(serial(idleVm)));
    // Two more ticks after the boot, so the boot's reads are in a rate.
    await new Promise((r) => setTimeout(r, 5000));
    const p = await points(idleVm);
    expect(p.t.length, JSON.stringify(p)).toBeGreaterThan(2);
    expect(sum(p.io.diskRdBytes), JSON.stringify(p.io)).toBeGreaterThan(1024 * 1024);
    expect(sum(p.io.diskRdOps)).toBeGreaterThan(0);
    expect(sum(p.io.diskWrBytes), JSON.stringify(p.io.diskWrBytes)).toBe(0);
    expect(sum(p.io.netOutBytes)).toBe(0);
    // Sampled rates are numbers (0 is a measurement); only the first sight is null.
    expect(p.io.diskWrBytes!.filter((v) => v !== null).length).toBeGreaterThan(1);
  }, 180_000);

  it('a guest writing its disk shows disk write > 0, and sending on its interface network out > 0', async () => {
    const p = await waitFor(`${writerVm} to write its disk and send (serial: ${serial(writerVm).slice(-300)})`, 120_000, async () => {
      const q = await points(writerVm);
      return sum(q.io.diskWrBytes) > 0 && sum(q.io.netOutBytes) > 0 ? q : null;
    });
    expect(serial(writerVm)).toContain('kfio-guest disks: vda nets: eth0');
    expect(sum(p.io.diskWrOps)).toBeGreaterThan(0);
    expect(sum(p.io.netOutPkts)).toBeGreaterThan(0);
    // The idle guest, sampled over the same time, wrote nothing.
    expect(sum((await points(idleVm)).io.diskWrBytes)).toBe(0);
  }, 150_000);
});
