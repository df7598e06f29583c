import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { http, inNode, lab, labNodes, tryInNode, type LabNode } from '../helpers/lab.js';

/**
 * How migrations fail, on a three-node lab. After every failure: the VM is defined and
 * running on the source with its disk intact, nothing of it is left on the destination
 * (no domain, no disk file the job created), and the job says in one sentence why.
 * Also: offline migration, a migration between two peers driven from a third node's
 * API, and a manager killed in the middle of a migration.
 */
const [A, B, C] = labNodes(3) as [LabNode, LabNode, LabNode];
const VM = 'ferry-f';
const IMG = `/var/lib/kvm-ferry/images/${VM}.qcow2`;

const counterOn = (node: string, vm: string): number => {
  const m = [...tryInNode(node, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`).out.matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};
const domains = (node: string): string[] =>
  inNode(node, 'virsh', '-c', 'qemu:///system', 'list', '--all', '--name').split('\n').map((s) => s.trim()).filter(Boolean);
const sh = (node: string, script: string) => inNode(node, 'bash', '-c', script);

async function migrate(from: LabNode, to: LabNode, vm = VM, via: LabNode = from, mode?: 'live' | 'offline') {
  return http(via.url, 'POST', `/api/nodes/${from.name}/vms/${vm}/migrate?wait=240`, { to: to.name, ...(mode ? { mode } : {}) });
}

/** The invariant every failure must keep. */
async function assertIntactOnA(destination: LabNode, keptOnDestination: string[] = []) {
  const vm = (await http(A.url, 'GET', `/api/nodes/${A.name}/vms/${VM}`)).json;
  expect(vm.state).toBe('running');
  expect(tryInNode(A.name, 'qemu-img', 'check', '-U', IMG).ok).toBe(true);
  if (!keptOnDestination.includes('domain')) expect(domains(destination.name)).not.toContain(VM);
  if (!keptOnDestination.includes('disk')) expect(tryInNode(destination.name, 'stat', IMG).ok).toBe(false);
}

async function lastJob(node: LabNode, vm = VM) {
  return (await http(node.url, 'GET', `/api/jobs?vm=${vm}&limit=1`)).json[0];
}

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  lab('up', '3', '--with-manager');
  inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', IMG);
  const r = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: VM, vcpus: 1, memoryMiB: 128, source: 'import', image: `${VM}.qcow2` });
  expect(r.json.job?.state, JSON.stringify(r.json)).toBe('ok');
  await waitFor('the guest to count on A', 90_000, () => counterOn(A.name, VM) >= 2);
}, 300_000);

afterAll(() => {
  lab('down');
});

describe('a migration that cannot start is refused, recorded, and changes nothing', () => {
  it("when the peer's libvirtd is stopped", async () => {
    lab('daemon', B.name, 'libvirtd', 'stop');
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toMatch(/^Migration of ferry-f to lab-b refused: libvirtd on node lab-b does not answer; start it there/);
      const job = await lastJob(A);
      expect(job).toMatchObject({ kind: 'migrate', state: 'failed', message: r.json.error.message });
    } finally {
      lab('daemon', B.name, 'libvirtd', 'start');
    }
    await assertIntactOnA(B);
  });

  it("when the peer's sshd is stopped", async () => {
    lab('daemon', B.name, 'sshd', 'stop');
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toMatch(/refused: Node lab-b refused the SSH connection on 10\.77\.0\.12:22; is sshd running there\?/);
    } finally {
      lab('daemon', B.name, 'sshd', 'start');
    }
    await assertIntactOnA(B);
  });

  it("when the peer's SSH host key is not the pinned one", async () => {
    const key = '/var/lib/kvm-ferry-lab/lab-b/ssh/ssh_host_ed25519_key';
    execFileSync('cp', [key, `${key}.orig`]);
    execFileSync('cp', [`${key}.pub`, `${key}.pub.orig`]);
    execFileSync('rm', ['-f', key, `${key}.pub`]);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    lab('daemon', B.name, 'sshd', 'stop');
    lab('daemon', B.name, 'sshd', 'start');
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toMatch(/SSH host key does not match the pinned key; refusing to connect/);
      const nodes = (await http(A.url, 'GET', '/api/nodes')).json;
      expect(nodes.find((n: { name: string }) => n.name === B.name)).toMatchObject({ status: 'down' });
    } finally {
      execFileSync('mv', [`${key}.orig`, key]);
      execFileSync('mv', [`${key}.pub.orig`, `${key}.pub`]);
      lab('daemon', B.name, 'sshd', 'stop');
      lab('daemon', B.name, 'sshd', 'start');
    }
    await assertIntactOnA(B);
  });

  it('when the disk path already exists on the destination (and leaves that file alone)', async () => {
    inNode(B.name, 'qemu-img', 'create', '-q', '-f', 'qcow2', IMG, '1G');
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toBe(`Migration of ${VM} to ${B.name} refused: One device stops the move: A file already exists at ${IMG} on ${B.name}. Move or delete that file on ${B.name} first, if nothing there uses it.`);
      await assertIntactOnA(B, ['disk']);
      expect(tryInNode(B.name, 'stat', IMG).ok).toBe(true);
    } finally {
      inNode(B.name, 'rm', '-f', IMG);
    }
  });

  it('when the VM name is taken on the destination', async () => {
    sh(B.name, `printf '%s' "<domain type='qemu'><name>${VM}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>" > /tmp/taken.xml && virsh -q -c qemu:///system define /tmp/taken.xml`);
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toBe(`Migration of ${VM} to ${B.name} refused: A VM named ${VM} already exists on node ${B.name}.`);
      await assertIntactOnA(B, ['domain']);
    } finally {
      inNode(B.name, 'virsh', '-q', '-c', 'qemu:///system', 'undefine', VM);
    }
  });

  it('when the destination has not enough disk space', async () => {
    sh(B.name, 'mount -t tmpfs -o size=2m kf-small /var/lib/kvm-ferry/images');
    try {
      const r = await migrate(A, B);
      expect(r.status).toBe(409);
      expect(r.json.error.message).toMatch(/refused: Not enough disk space: \/var\/lib\/kvm-ferry\/images on node lab-b has 2\.0 MiB free|refused: Not enough disk space: \/var\/lib\/kvm-ferry\/images on node lab-b has \d+ MiB free, the disks need \d+ MiB/);
    } finally {
      sh(B.name, 'umount /var/lib/kvm-ferry/images');
    }
    await assertIntactOnA(B);
  });
});

describe('a migration that fails half-way', () => {
  it('when the link to the destination is cut during the copy: aborted after the stall, VM stays, leftovers removed once the link is back', async () => {
    lab('shape', A.name, '20mbit');
    let jobId = 0;
    try {
      const first = await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate`, { to: B.name });
      expect(first.status, JSON.stringify(first.json)).toBe(202);
      jobId = first.json.job.id;
      await waitFor('data to flow', 60_000, async () => Number((await http(A.url, 'GET', `/api/jobs/${jobId}`)).json.progress?.dataProcessedBytes ?? 0) > 1_000_000);
      lab('cut', B.name);
      const done = (await http(A.url, 'GET', `/api/jobs/${jobId}?wait=180`)).json;
      expect(done.state).toBe('failed');
      // The guest is emulated on QEMU 7.2, so it was paused for the copy; libvirt holds the
      // cancelled copy's job until lab-b answers again, and only then can it be resumed.
      expect(done.message).toMatch(/^Migration of ferry-f to lab-b failed while copying\. (No data reached lab-b for \d+ s, so it was stopped; check the network between the nodes\.|The connection to lab-b broke; check the network between the nodes\.) VM ferry-f (is still running on lab-a with its disks intact|is paused on lab-a with its disks intact until libvirt there winds down the cancelled copy; kvm-ferry resumes it then)\./);
      expect(done.message).toMatch(/cannot be reached to remove what the migration left there .*retries until it can\./);
      expect(done.result.cleanupPending).toBe(true);
    } finally {
      lab('heal', B.name);
      lab('shape', A.name, 'off');
    }
    // The janitor removes the destination's leftovers once lab-b answers again.
    await waitFor('the leftovers on lab-b to be removed', 90_000, async () => (await http(A.url, 'GET', `/api/jobs/${jobId}`)).json.result?.cleanupPending === false);
    expect((await http(A.url, 'GET', `/api/jobs/${jobId}`)).json.result.cleanedUpAt).toBeTruthy();
    // libvirt on A winds its cancelled disk copy down once the healed link answers; until
    // then pre-flight says so (vm-idle) instead of letting a second migration collide.
    await waitFor("A's libvirt to finish the cancelled migration job", 180_000, () => !/^Job type:\s*(Unbounded|2|1)/m.test(tryInNode(A.name, 'virsh', '-c', 'qemu:///system', 'domjobinfo', VM).out));
    // kvm-ferry's janitor (every 15 s) resumes it as soon as libvirt lets go, if it was still
    // paused (the leftovers on B may be gone before that: the VM is checked after, not before).
    await waitFor('the job to say the VM runs again', 60_000, async () => (await http(A.url, 'GET', `/api/jobs/${jobId}`)).json.result?.resumePending !== true);
    await assertIntactOnA(B);
    const before = counterOn(A.name, VM);
    await waitFor('the guest to keep counting on A', 20_000, () => counterOn(A.name, VM) > before);
  });
});

describe('offline migration, and any pair of nodes from any page', () => {
  const OFF = 'ferry-off';
  it('moves a shut-off VM from A to C with its disk, and it boots there', async () => {
    inNode(A.name, 'cp', '/var/cache/kvm-ferry/guest/guest.qcow2', `/var/lib/kvm-ferry/images/${OFF}.qcow2`);
    const made = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: OFF, vcpus: 1, memoryMiB: 128, source: 'import', image: `${OFF}.qcow2`, start: false });
    expect(made.json.job?.state, JSON.stringify(made.json)).toBe('ok');
    const srcSize = Number(inNode(A.name, 'stat', '-c', '%s', `/var/lib/kvm-ferry/images/${OFF}.qcow2`).trim());
    const r = await migrate(A, C, OFF);
    expect(r.json.job?.state, JSON.stringify(r.json)).toBe('ok');
    expect(r.json.job.message).toMatch(/^VM ferry-off moved \(offline\) to lab-c in [\d.]+ s\.$/);
    expect(r.json.job.result.bytesMoved).toBe(srcSize);
    expect(domains(A.name)).not.toContain(OFF);
    expect(tryInNode(A.name, 'stat', `/var/lib/kvm-ferry/images/${OFF}.qcow2`).ok).toBe(false);
    expect(inNode(C.name, 'virsh', '-c', 'qemu:///system', 'domstate', OFF).trim()).toBe('shut off');
    // Started on C from A's API: the request goes to C's own manager.
    const start = await http(A.url, 'POST', `/api/nodes/${C.name}/vms/${OFF}/start?wait=60`, {});
    expect(start.json.job).toMatchObject({ node: C.name, state: 'ok' });
    await waitFor('the guest to boot and count on C', 90_000, () => counterOn(C.name, OFF) >= 2);
  });

  it("live-migrates it from C to B, driven from A's API", async () => {
    const before = counterOn(C.name, OFF);
    const r = await migrate(C, B, OFF, A);
    expect(r.json.job, JSON.stringify(r.json)).toMatchObject({ node: C.name, kind: 'migrate', state: 'ok' });
    expect((await http(A.url, 'GET', `/api/nodes/${B.name}/vms/${OFF}`)).json.state).toBe('running');
    await waitFor('the counter to continue on B', 30_000, () => counterOn(B.name, OFF) > before);
    const del = await http(A.url, 'DELETE', `/api/nodes/${B.name}/vms/${OFF}?disks=delete&force=true&wait=60`);
    expect(del.json.job?.state).toBe('ok');
  });
});

describe('the manager is killed during a migration', () => {
  const managerPid = () => inNode(A.name, 'cat', '/run/kvm-ferry-manager.pid').trim();

  it('follows the migration libvirt is still running after a restart, and records it ok', async () => {
    // Pre-flight's own view: libvirt on A may still be winding down the cut migration.
    await waitFor('A to be ready for another migration', 180_000, async () => (await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate/check`, { to: C.name })).json.go === true);
    lab('shape', A.name, '30mbit');
    try {
      const first = await http(A.url, 'POST', `/api/nodes/${A.name}/vms/${VM}/migrate`, { to: C.name });
      expect(first.status, JSON.stringify(first.json)).toBe(202);
      const id = first.json.job.id;
      let seen: unknown = null;
      await waitFor('the copy to start', 60_000, async () => {
        const j = (await http(A.url, 'GET', `/api/jobs/${id}`)).json;
        seen = j;
        if (j.state !== 'running') throw new Error(`the migration ended before the kill: ${JSON.stringify(j)}`);
        return Number(j.progress?.dataProcessedBytes ?? 0) > 500_000;
      }).catch((e: Error) => {
        throw new Error(`${e.message}; last job seen: ${JSON.stringify(seen)}`);
      });
      lab('manager', A.name, 'kill');
      lab('manager', A.name, 'start');
      const done = (await http(A.url, 'GET', `/api/jobs/${id}?wait=200`)).json;
      expect(done.state, done.message).toBe('ok');
      expect(done.message).toBe(`VM ${VM} migrated to ${C.name}; the migration finished while kvm-ferry was restarting.`);
      expect(inNode(C.name, 'virsh', '-c', 'qemu:///system', 'domstate', VM).trim()).toBe('running');
      expect(domains(A.name)).not.toContain(VM);
      expect(tryInNode(A.name, 'stat', IMG).ok).toBe(false);
    } finally {
      lab('shape', A.name, 'off');
    }
  });

  it('fails the job, keeps the VM running on the source and cleans the destination when the migration died with it', async () => {
    lab('shape', C.name, '30mbit');
    try {
      const first = await http(C.url, 'POST', `/api/nodes/${C.name}/vms/${VM}/migrate`, { to: A.name });
      expect(first.status).toBe(202);
      const id = first.json.job.id;
      await waitFor('the copy to start', 60_000, async () => Number((await http(C.url, 'GET', `/api/jobs/${id}`)).json.progress?.dataProcessedBytes ?? 0) > 500_000);
      const pid = inNode(C.name, 'cat', '/run/kvm-ferry-manager.pid').trim();
      const children = tryInNode(C.name, 'pgrep', '-P', pid, 'virsh').out.split('\n').filter(Boolean);
      expect(children.length).toBeGreaterThan(0);
      lab('manager', C.name, 'kill');
      for (const c of children) tryInNode(C.name, 'kill', '-9', c);
      lab('manager', C.name, 'start');
      const done = (await http(C.url, 'GET', `/api/jobs/${id}?wait=120`)).json;
      expect(done.state).toBe('failed');
      expect(done.message).toMatch(/^Migration of ferry-f to lab-a was interrupted when kvm-ferry restarted\. VM ferry-f is still running on lab-c with its disks intact\./);
      expect(inNode(C.name, 'virsh', '-c', 'qemu:///system', 'domstate', VM).trim()).toBe('running');
      expect(tryInNode(C.name, 'qemu-img', 'check', '-U', IMG).ok).toBe(true);
      await waitFor('nothing of it left on lab-a', 30_000, () => !domains(A.name).includes(VM) && !tryInNode(A.name, 'stat', IMG).ok);
    } finally {
      lab('shape', C.name, 'off');
    }
    expect(managerPid()).toMatch(/^\d+$/);
  });
});
