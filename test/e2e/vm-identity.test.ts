import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { http, inNode, lab, labNodes, tryInNode, type LabNode } from '../helpers/lab.js';
import { consoleGreeting } from '../helpers/console-app.js';

/**
 * Issue 11, "never the wrong VM", on real libvirt: `virsh … --domain 1` means domain
 * id 1 before it means the VM named 1. On lab-a, VM `other` runs with id 1; beside it
 * VM `1` and two VMs named like UUIDs (other's, and VM 1's). Every action on VM 1 —
 * start, shutdown, force off, console (from A and through B), delete with its disk,
 * delete of a UEFI VM (the virsh NVRAM path), an aborted and a finished migration —
 * must leave `other` running with the same id, still defined, its disk intact, and
 * the UUID-named VMs as they were.
 */
const [A, B] = labNodes(2) as [LabNode, LabNode];
const IMAGES = '/var/lib/kvm-ferry/images';
const GUEST = '/var/cache/kvm-ferry/guest/guest.qcow2';
const NVRAM = '/var/lib/libvirt/qemu/nvram/1_VARS.fd';

const virshOn = (node: LabNode, ...args: string[]) => inNode(node.name, 'virsh', '-c', 'qemu:///system', ...args);
const tryVirshOn = (node: LabNode, ...args: string[]) => tryInNode(node.name, 'virsh', '-c', 'qemu:///system', ...args);

interface DomFacts {
  name: string;
  id: string;
  state: string;
  persistent: string;
}

/**
 * libvirt's own view of the domain with this UUID, or null. When no domain has the UUID,
 * virsh looks the text up as a *name* — and here a VM is named like VM 1's old UUID —
 * so the answer counts only if it carries the UUID asked for.
 */
function factsOf(node: LabNode, uuid: string): DomFacts | null {
  const r = tryVirshOn(node, 'dominfo', '--domain', uuid);
  if (!r.ok) return null;
  const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(r.out)?.[1]?.trim() ?? '';
  if (field('UUID') !== uuid) return null;
  return { name: field('Name'), id: field('Id'), state: field('State'), persistent: field('Persistent') };
}

const counterLines = (vm: string): number =>
  [...tryInNode(A.name, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`).out.matchAll(/kvm-ferry-counter (\d+)/g)].length;

const diskIntact = (path: string) => tryInNode(A.name, 'qemu-img', 'check', '-U', path).ok;

const vncPortOf = (node: LabNode, uuid: string): number => Number(/<graphics type='vnc' port='(\d+)'/.exec(virshOn(node, 'dumpxml', '--domain', uuid))?.[1]);

async function ok(r: { status: number; json: any }) {
  expect(r.json?.job?.state, JSON.stringify(r.json)).toBe('ok');
  return r.json.job;
}

const api = (method: string, path: string, body?: unknown) => http(A.url, method, `/api/nodes/${A.name}${path}`, body);

/** The VMs that must never be touched, as they were when set up: checked after every step. */
const world = {
  other: { uuid: '', disk: `${IMAGES}/other.qcow2` },
  namedOther: { uuid: '', disk: '' },
  namedOne: { uuid: '', disk: '' },
  one: { uuid: '' },
};

function assertBystanders(step: string, namedOtherState = 'shut off') {
  const o = factsOf(A, world.other.uuid);
  expect(o, `other after ${step}`).toEqual({ name: 'other', id: '1', state: 'running', persistent: 'yes' });
  expect(diskIntact(world.other.disk), `other's disk after ${step}`).toBe(true);
  expect(factsOf(A, world.namedOther.uuid), `VM ${world.other.uuid} after ${step}`).toEqual({ name: world.other.uuid, id: namedOtherState === 'running' ? expect.stringMatching(/^\d+$/) : '-', state: namedOtherState, persistent: 'yes' });
  expect(factsOf(A, world.namedOne.uuid), `VM named like VM 1's first UUID after ${step}`).toMatchObject({ state: 'shut off', persistent: 'yes' });
  for (const d of [world.namedOther.disk, world.namedOne.disk]) expect(diskIntact(d), `${d} after ${step}`).toBe(true);
}

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  lab('up', '2', '--with-manager');
  for (const img of ['other', 'one']) inNode(A.name, 'cp', GUEST, `${IMAGES}/${img}.qcow2`);
  await waitFor('both managers to answer', 60_000, async () => {
    const up = await Promise.all([A, B].map((n) => http(n.url, 'GET', '/healthz').then((r) => r.status === 200, () => false)));
    return up.every(Boolean);
  });
}, 300_000);

afterAll(() => {
  lab('down');
  restoreLabInstanceEnv();
});

describe('VM 1 beside a running VM with domain id 1, and VMs named like UUIDs', () => {
  it('sets up: other runs with id 1; VM 1 and the UUID-named VMs are defined, shut off', async () => {
    await ok(await api('POST', '/vms?wait=120', { name: 'other', vcpus: 1, memoryMiB: 128, source: 'import', image: 'other.qcow2' }));
    world.other.uuid = (await api('GET', '/vms/other')).json.uuid;
    await waitFor('other to count', 90_000, () => counterLines('other') >= 2);
    expect(factsOf(A, world.other.uuid)).toMatchObject({ id: '1', state: 'running' });

    await ok(await api('POST', '/vms?wait=120', { name: '1', vcpus: 1, memoryMiB: 128, source: 'import', image: 'one.qcow2', start: false }));
    world.one.uuid = (await api('GET', '/vms/1')).json.uuid;
    for (const [key, name] of [['namedOther', world.other.uuid], ['namedOne', world.one.uuid]] as const) {
      const job = await ok(await api('POST', '/vms?wait=120', { name, vcpus: 1, memoryMiB: 128, diskGiB: 1, source: 'none', start: false }));
      const vm = (await api('GET', `/vms/${name}`)).json;
      expect(vm.name).toBe(name);
      world[key] = { uuid: vm.uuid, disk: job.result.disk };
    }
    expect(factsOf(A, world.one.uuid)).toEqual({ name: '1', id: '-', state: 'shut off', persistent: 'yes' });
    assertBystanders('set-up');
  });

  it('starts VM 1, not domain 1', async () => {
    const job = await ok(await api('POST', '/vms/1/start?wait=60'));
    expect(job.params.uuid).toBe(world.one.uuid);
    expect(factsOf(A, world.one.uuid)).toMatchObject({ name: '1', state: 'running', id: expect.not.stringMatching(/^(1|-)$/) });
    await waitFor('VM 1 to count', 90_000, () => counterLines('1') >= 2);
    assertBystanders('start');
  });

  it("opens VM 1's console, from A and through B (virsh on the peer)", async () => {
    const port = vncPortOf(A, world.one.uuid);
    expect(port).not.toBe(vncPortOf(A, world.other.uuid));
    for (const via of [A, B]) {
      const status = await http(via.url, 'GET', `/api/nodes/${A.name}/vms/1/console`);
      expect(status.json, `console status via ${via.name}`).toMatchObject({ available: true, message: `The VNC server of VM 1 listens on 127.0.0.1:${port}.` });
      expect(await consoleGreeting(via.url, A.name, '1')).toMatch(/^RFB 003\.00\d\n$/);
    }
    assertBystanders('console');
  });

  it('shuts VM 1 down (forced off when the guest ignores ACPI)', async () => {
    await ok(await api('POST', '/vms/1/shutdown?wait=60', { timeoutSec: 5, force: true }));
    expect(factsOf(A, world.one.uuid)).toMatchObject({ state: 'shut off', persistent: 'yes' });
    assertBystanders('shutdown');
  });

  it('forces VM 1 off', async () => {
    await ok(await api('POST', '/vms/1/start?wait=60'));
    await ok(await api('POST', '/vms/1/poweroff?wait=60'));
    expect(factsOf(A, world.one.uuid)).toMatchObject({ state: 'shut off', persistent: 'yes' });
    assertBystanders('poweroff');
  });

  it("starts and forces off the VM named like other's UUID, not other", async () => {
    const name = world.other.uuid;
    await ok(await api('POST', `/vms/${name}/start?wait=60`));
    assertBystanders(`start of ${name}`, 'running');
    await ok(await api('POST', `/vms/${name}/poweroff?wait=60`));
    assertBystanders(`poweroff of ${name}`);
  });

  it('deletes VM 1 (no UEFI) with its disk, and nothing else', async () => {
    const job = await ok(await api('DELETE', '/vms/1?disks=delete&wait=60'));
    expect(job.result.deletedDisks).toEqual([`${IMAGES}/one.qcow2`]);
    expect(factsOf(A, world.one.uuid)).toBeNull();
    expect(tryInNode(A.name, 'stat', `${IMAGES}/one.qcow2`).ok).toBe(false);
    assertBystanders('delete');
  });

  it('deletes a UEFI VM 1 through virsh undefine --nvram (the binding refuses NVRAM), and nothing else', async () => {
    // Defined outside kvm-ferry (its create has no UEFI option), with VM 1's old UUID: the
    // VM named like that UUID is then exactly what virsh would hit if it fell back to names.
    inNode(A.name, 'qemu-img', 'create', '-q', '-f', 'qcow2', `${IMAGES}/one-uefi.qcow2`, '1G');
    inNode(A.name, 'install', '-D', '-m', '600', '/usr/share/OVMF/OVMF_VARS_4M.fd', NVRAM);
    const xml = `<domain type='qemu'><name>1</name><uuid>${world.one.uuid}</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>` +
      `<os><type arch='x86_64' machine='q35'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram>${NVRAM}</nvram></os>` +
      `<features><acpi/></features><devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${IMAGES}/one-uefi.qcow2'/>` +
      `<target dev='vda' bus='virtio'/></disk><graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/></devices></domain>`;
    inNode(A.name, 'bash', '-c', 'printf %s "$1" > /var/lib/kvm-ferry/uefi-1.xml', 'sh', xml);
    virshOn(A, 'define', '/var/lib/kvm-ferry/uefi-1.xml');
    expect(factsOf(A, world.one.uuid)).toMatchObject({ name: '1', state: 'shut off', persistent: 'yes' });

    const job = await ok(await api('DELETE', '/vms/1?disks=delete&wait=60'));
    expect(job.result.deletedDisks).toEqual([`${IMAGES}/one-uefi.qcow2`]);
    expect(factsOf(A, world.one.uuid)).toBeNull();
    // Only virsh's --nvram removes the file: proof the fallback ran, and ran on VM 1.
    expect(tryInNode(A.name, 'stat', NVRAM).ok).toBe(false);
    assertBystanders('delete of the UEFI VM');
  });

  it('creates VM 1 again and aborts its migration to B: it stays on A, other untouched, nothing on B', async () => {
    inNode(A.name, 'rm', '-f', '/var/log/libvirt/qemu/1-serial.log');
    inNode(A.name, 'cp', GUEST, `${IMAGES}/one.qcow2`);
    await ok(await api('POST', '/vms?wait=120', { name: '1', vcpus: 1, memoryMiB: 128, source: 'import', image: 'one.qcow2' }));
    world.one.uuid = (await api('GET', '/vms/1')).json.uuid;
    await waitFor('VM 1 to count', 90_000, () => counterLines('1') >= 2);
    const idBefore = factsOf(A, world.one.uuid)!.id;

    lab('shape', A.name, '20mbit');
    try {
      const first = await api('POST', '/vms/1/migrate', { to: B.name, mode: 'live' });
      expect(first.status, JSON.stringify(first.json)).toBe(202);
      const id = first.json.job.id;
      await waitFor('the copy to start', 60_000, async () => (await http(A.url, 'GET', `/api/jobs/${id}`)).json.progress?.step === 'copy');
      expect((await http(A.url, 'POST', `/api/jobs/${id}/abort`)).status).toBe(200);
      const done = (await http(A.url, 'GET', `/api/jobs/${id}?wait=120`)).json;
      expect(done.state, JSON.stringify(done)).toBe('failed');
      expect(done.message).toMatch(/aborted/);
    } finally {
      lab('shape', A.name, 'off');
    }
    expect(factsOf(A, world.one.uuid)).toEqual({ name: '1', id: idBefore, state: 'running', persistent: 'yes' });
    expect(virshOn(B, 'list', '--all', '--uuid').trim()).toBe('');
    expect(tryInNode(B.name, 'stat', `${IMAGES}/one.qcow2`).ok).toBe(false);
    assertBystanders('aborted migration');
  });

  it('migrates VM 1 to B: VM 1 moves, other stays', async () => {
    const r = await api('POST', '/vms/1/migrate?wait=180', { to: B.name, mode: 'live' });
    await ok(r);
    expect(factsOf(A, world.one.uuid)).toBeNull();
    expect(factsOf(B, world.one.uuid)).toMatchObject({ name: '1', state: 'running', persistent: 'yes' });
    expect(virshOn(B, 'list', '--all', '--name').trim()).toBe('1');
    expect(tryInNode(A.name, 'stat', `${IMAGES}/one.qcow2`).ok).toBe(false);
    assertBystanders('migration');
    // other was never paused or restarted: its guest went on counting throughout.
    const before = counterLines('other');
    await waitFor('other to go on counting', 30_000, () => counterLines('other') > before);
  });
});
