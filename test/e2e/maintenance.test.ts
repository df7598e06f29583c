import { restoreLabInstanceEnv } from '../helpers/lab-instance.js';
import { appendFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireRealLibvirt, waitFor } from '../helpers/lab-prereqs.js';
import { http, inNode, lab, labNodes, LAB_STATE, tryInNode, type LabNode } from '../helpers/lab.js';

/**
 * Maintenance mode on a three-node lab (issue 14). Four idle guests of different RAM
 * sizes on A; B and C offer other nodes' plans at most 700 and 600 MiB (config
 * maintenance.offeredMemoryMiB — a limit, nothing is filled), A plans with its default
 * 256 MiB margin: the 512 MiB guest fits nowhere, the others are spread over B and C.
 * Each guest prints a counter on its serial port every second: the counter going on
 * where it landed proves it moved alive.
 */
const [A, B, C] = labNodes(3) as [LabNode, LabNode, LabNode];
const GUEST = '/var/cache/kvm-ferry/guest/guest.qcow2';
const VMS = { 'mt-big': 512, 'mt-256': 256, 'mt-192': 192, 'mt-128': 128 } as const;
type VmName = keyof typeof VMS;
const PLACED: VmName[] = ['mt-256', 'mt-192', 'mt-128'];

const counterOn = (node: LabNode, vm: string): number => {
  const m = [...tryInNode(node.name, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`).out.matchAll(/kvm-ferry-counter (\d+)/g)];
  return m.length ? Number(m[m.length - 1]![1]) : 0;
};
const names = (node: LabNode) => tryInNode(node.name, 'virsh', '-c', 'qemu:///system', 'list', '--all', '--name').out.split('\n').map((s) => s.trim()).filter(Boolean).sort();
const status = async () => (await http(A.url, 'GET', `/api/nodes/${A.name}/maintenance`)).json;

beforeAll(async () => {
  requireRealLibvirt();
  lab('down');
  lab('up', '3');
  appendFileSync(`${LAB_STATE}/${B.name}/config.yaml`, 'maintenance:\n  offeredMemoryMiB: 700\n');
  appendFileSync(`${LAB_STATE}/${C.name}/config.yaml`, 'maintenance:\n  offeredMemoryMiB: 600\n');
  for (const n of [A, B, C]) lab('manager', n.name, 'start');
  for (const [vm, mem] of Object.entries(VMS)) {
    inNode(A.name, 'cp', GUEST, `/var/lib/kvm-ferry/images/${vm}.qcow2`);
    const r = await http(A.url, 'POST', `/api/nodes/${A.name}/vms?wait=120`, { name: vm, vcpus: 1, memoryMiB: mem, source: 'import', image: `${vm}.qcow2` });
    if (r.json.job?.state !== 'ok') throw new Error(`create ${vm}: ${JSON.stringify(r.json)}`);
  }
  await waitFor('every guest to count on A', 120_000, () => Object.keys(VMS).every((vm) => counterOn(A, vm) >= 2));
}, 300_000);

afterAll(() => {
  lab('down');
  restoreLabInstanceEnv();
});

describe('maintenance mode on three lab nodes', () => {
  it('plans each VM onto a node it fits, after the ones already placed, and names the one that fits nowhere', async () => {
    const r = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/plan`, {});
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const by = Object.fromEntries(r.json.plan.entries.map((e: { vm: string }) => [e.vm, e]));
    expect(by['mt-256']).toMatchObject({ action: 'move', to: B.name, mode: 'live' });
    expect(by['mt-192']).toMatchObject({ action: 'move', to: C.name, mode: 'live' });
    expect(by['mt-128']).toMatchObject({ action: 'move', to: B.name, mode: 'live' });
    expect(by['mt-big'].action).toBe('cannot');
    expect(by['mt-big'].reason).toBe(`Cannot move: no node has room: ${B.name} has 700 MiB of RAM free, it needs 512 MiB + 256 MiB margin; ${C.name} has 600 MiB of RAM free, it needs 512 MiB + 256 MiB margin.`);
    expect(r.json.plan.etaSec).toBeGreaterThan(0);
  });

  it('evacuates: every placed VM moves alive, A refuses new VMs and incoming migrations, and a kill -9 of A\'s manager mid-run does not stop it', async () => {
    const before = Object.fromEntries(PLACED.map((vm) => [vm, counterOn(A, vm)]));
    const start = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/start`, {});
    expect(start.status, JSON.stringify(start.json)).toBe(202);
    expect(start.json.job.kind).toBe('maintenance');

    const created = await http(A.url, 'POST', `/api/nodes/${A.name}/vms`, { name: 'mt-new', vcpus: 1, memoryMiB: 128, diskGiB: 1 });
    expect(created.status).toBe(409);
    expect(created.json.error.message).toBe(`Node ${A.name} is in maintenance; it takes no new VMs until its maintenance ends.`);

    // Killed once the first move is done and another is still to go.
    await waitFor('one move done, one to go', 120_000, async () => {
      const moves = (await status()).moves as { status: string }[];
      return moves.some((m) => m.status === 'moved') && moves.some((m) => m.status === 'pending' || m.status === 'running');
    });
    lab('manager', A.name, 'kill');
    lab('manager', A.name, 'start');
    const done = await waitFor('the evacuation to finish after the restart', 150_000, async () => {
      const s = await status();
      return s.state === 'maintenance' ? s : null;
    });
    expect(done.summary).toBe('Evacuation finished: 3 moved, 0 failed, 1 stayed.');
    // The run that finished is the restarted manager's; the killed one's job says it was interrupted.
    expect(done.jobId).not.toBe(start.json.job.id);
    expect((await http(A.url, 'GET', `/api/jobs/${start.json.job.id}`)).json).toMatchObject({ state: 'failed', message: expect.stringMatching(/^Interrupted: kvm-ferry restarted/) });
    expect(done.away.map((h: { vm: string; awayOn: string }) => `${h.vm}@${h.awayOn}`).sort()).toEqual([`mt-128@${B.name}`, `mt-192@${C.name}`, `mt-256@${B.name}`]);
    expect(names(A)).toEqual(['mt-big']);
    expect(names(B)).toEqual(['mt-128', 'mt-256']);
    expect(names(C)).toEqual(['mt-192']);
    for (const vm of PLACED) {
      const on = vm === 'mt-192' ? C : B;
      await waitFor(`${vm} to count on ${on.name}`, 30_000, () => counterOn(on, vm) > before[vm]! + 1);
      // Its serial log there starts mid-count: it never booted again.
      const first = Number(/kvm-ferry-counter (\d+)/.exec(tryInNode(on.name, 'cat', `/var/log/libvirt/qemu/${vm}-serial.log`).out)?.[1]);
      expect(first).toBeGreaterThanOrEqual(before[vm]!);
    }

    // An incoming migration (B → A) is refused in B's pre-flight, by A's own word.
    const check = (await http(B.url, 'POST', `/api/nodes/${B.name}/vms/mt-128/migrate/check`, { to: A.name })).json;
    expect(check.checks.find((c: { id: string }) => c.id === 'peer-maintenance')).toEqual({ id: 'peer-maintenance', ok: false, message: `Node ${A.name} is in maintenance; it takes no incoming migrations until its maintenance ends.` });
    const incoming = await http(B.url, 'POST', `/api/nodes/${B.name}/vms/mt-128/migrate`, { to: A.name });
    expect(incoming.status).toBe(409);
    expect(incoming.json.error.message).toBe(`Migration of mt-128 to ${A.name} refused: Node ${A.name} is in maintenance; it takes no incoming migrations until its maintenance ends.`);
    expect(names(B)).toEqual(['mt-128', 'mt-256']);
  });

  it('ends maintenance: every VM comes home alive', async () => {
    const before = { 'mt-256': counterOn(B, 'mt-256'), 'mt-128': counterOn(B, 'mt-128'), 'mt-192': counterOn(C, 'mt-192') };
    const end = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/end?wait=240`, {});
    expect(end.json.job?.state, JSON.stringify(end.json)).toBe('ok');
    expect(end.json.job.message).toBe('Homecoming finished: 3 moved, 0 failed.');
    const s = await status();
    expect(s).toMatchObject({ state: 'normal', away: [] });
    expect(names(A)).toEqual(['mt-128', 'mt-192', 'mt-256', 'mt-big']);
    expect(names(B)).toEqual([]);
    expect(names(C)).toEqual([]);
    for (const vm of PLACED) await waitFor(`${vm} to count on A again`, 30_000, () => counterOn(A, vm) > before[vm as keyof typeof before] + 1);
  });

  it('aborts an evacuation in the middle: the running moves end with their VMs intact on A, the others are not started', async () => {
    lab('shape', A.name, '10mbit');
    try {
      const start = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/start`, {});
      expect(start.status, JSON.stringify(start.json)).toBe(202);
      await waitFor('a move to be copying', 60_000, async () => {
        for (const m of (await status()).moves as { jobId: number | null }[]) {
          if (m.jobId !== null && (await http(A.url, 'GET', `/api/jobs/${m.jobId}`)).json.progress?.step === 'copy') return true;
        }
        return false;
      });
      const abort = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/abort`, {});
      expect(abort.status, JSON.stringify(abort.json)).toBe(200);
      const job = (await http(A.url, 'GET', `/api/jobs/${start.json.job.id}?wait=120`)).json;
      expect(job.state).toBe('ok');
      expect(job.message).toMatch(/^Evacuation finished: 0 moved, \d failed, \d not started, 1 stayed\..* \(aborted\)$/);
      const moves = (await status()).moves as { vm: string; status: string; message: string }[];
      expect(moves.filter((m) => m.status === 'failed').every((m) => /was aborted\. VM \S+ is still running on lab-a/.test(m.message)), JSON.stringify(moves)).toBe(true);
      expect(moves.some((m) => m.status === 'not-started')).toBe(true);
      expect(names(A)).toEqual(['mt-128', 'mt-192', 'mt-256', 'mt-big']);
      expect(names(B)).toEqual([]);
      expect(names(C)).toEqual([]);
      for (const vm of Object.keys(VMS)) expect((await http(A.url, 'GET', `/api/nodes/${A.name}/vms/${vm}`)).json.state).toBe('running');
    } finally {
      lab('shape', A.name, 'off');
    }
    const end = await http(A.url, 'POST', `/api/nodes/${A.name}/maintenance/end`, {});
    expect(end.json.maintenance).toMatchObject({ state: 'normal' });
  });
});
