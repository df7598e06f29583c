import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ageSentence, coalesceChanges, diffNodeView, inactiveReason, type NodeView } from '../../src/domain/inventory-view.js';
import type { Vm, VmState } from '../../src/domain/vm.js';
import { InventoryEvents } from '../../src/web/inventory-events.js';
import { EventEmitter } from 'node:events';

const vm = (name: string, state: VmState = 'running'): Vm => ({
  name, uuid: `uuid-${name}`, state, vcpus: 1, memoryMiB: 128, maxMemoryMiB: 128, vncPort: null, vncListen: null, disks: [], autostart: null, osVariant: null,
});
const view = (over: Partial<NodeView>): NodeView => ({ name: 'beta', local: false, state: 'active', vms: [], at: 1000, reason: null, ...over });

describe('diffNodeView', () => {
  it('reports added, removed and changed VMs by UUID, not an age moving on', () => {
    const prev = view({ vms: [vm('a'), vm('b'), vm('c', 'shut-off')] });
    const next = view({ vms: [vm('a'), vm('c', 'running'), vm('d')], at: 6000 });
    expect(diffNodeView(prev, next)).toEqual([
      { kind: 'vm-state', node: 'beta', vm: { name: 'c', uuid: 'uuid-c', state: 'running' }, was: 'shut-off' },
      { kind: 'vm-added', node: 'beta', vm: { name: 'd', uuid: 'uuid-d', state: 'running' } },
      { kind: 'vm-removed', node: 'beta', vm: { name: 'b', uuid: 'uuid-b', state: 'running' } },
    ]);
    expect(diffNodeView(next, { ...next, at: 9000 })).toEqual([]);
  });

  it('says once that a node went inactive, and does not report its last known VMs as removed', () => {
    const prev = view({ vms: [vm('a')] });
    const down = view({ vms: [vm('a')], state: 'inactive', reason: 'libvirt does not answer: x' });
    expect(diffNodeView(prev, down)).toEqual([{ kind: 'node', node: 'beta', state: 'inactive', reason: 'libvirt does not answer: x', at: 1000 }]);
    expect(diffNodeView(down, down)).toEqual([]);
    expect(diffNodeView(down, view({ vms: [vm('a')], at: 2000 }))).toEqual([{ kind: 'node', node: 'beta', state: 'active', reason: null, at: 2000 }]);
  });

  it('a first answer lists every VM as added', () => {
    const never = view({ state: 'never', at: null });
    expect(diffNodeView(never, view({ vms: [vm('a')] })).map((c) => c.kind)).toEqual(['node', 'vm-added']);
  });
});

describe('coalesceChanges', () => {
  const b = (name: string, state: VmState) => ({ name, uuid: `uuid-${name}`, state });
  it('keeps the last word per VM and per node, and drops a VM added then removed', () => {
    const out = coalesceChanges([
      { kind: 'vm-state', node: 'n', vm: b('a', 'shutting-down'), was: 'running' },
      { kind: 'vm-added', node: 'n', vm: b('x', 'running') },
      { kind: 'node', node: 'n', state: 'inactive', reason: 'r', at: 1 },
      { kind: 'vm-state', node: 'n', vm: b('a', 'shut-off'), was: 'shutting-down' },
      { kind: 'vm-removed', node: 'n', vm: b('x', 'running') },
      { kind: 'node', node: 'n', state: 'active', reason: null, at: 2 },
    ]);
    expect(out).toEqual([
      { kind: 'vm-state', node: 'n', vm: b('a', 'shut-off'), was: 'shutting-down' },
      { kind: 'node', node: 'n', state: 'active', reason: null, at: 2 },
    ]);
  });
});

describe('ageSentence and inactiveReason', () => {
  it('says how old a view is, or that the node was never reached', () => {
    expect(ageSentence(10_000, 13_400)).toBe('as of 3 s ago');
    expect(ageSentence(0, 300_000)).toBe('as of 5 min ago');
    expect(ageSentence(0, 3 * 3600_000)).toBe('as of 3 h ago');
    expect(ageSentence(null, 5)).toBe('never reached since this manager started');
  });

  it('tells a libvirt that does not answer from a manager that cannot be reached', () => {
    expect(inactiveReason(true, 'LIBVIRT_UNREACHABLE', 'libvirt does not answer: virConnectListAllDomains got no reply in 10 s.')).toBe('libvirt does not answer: virConnectListAllDomains got no reply in 10 s.');
    expect(inactiveReason(false, 'LIBVIRT_UNREACHABLE', 'Cannot connect to libvirt at qemu:///system.')).toBe('libvirt does not answer: Cannot connect to libvirt at qemu:///system.');
    expect(inactiveReason(false, 'NODE_UNREACHABLE', 'kvm-ferry does not answer on node beta; start it there.')).toBe('manager unreachable: kvm-ferry does not answer on node beta; start it there.');
  });
});

/** A client whose socket never takes anything: everything written stays pending. */
class StuckClient extends Writable {
  destroyedByHub = false;
  constructor() {
    super({ highWaterMark: 1024 });
  }
  override _write(_c: unknown, _e: BufferEncoding, _cb: () => void): void {
    /* never calls back: the peer stopped reading */
  }
  override destroy(): this {
    this.destroyedByHub = true;
    return super.destroy();
  }
}

describe('InventoryEvents (the /events hub)', () => {
  const fakeCache = () => Object.assign(new EventEmitter(), { views: () => [] as NodeView[] });
  const change = (i: number) => ({ kind: 'vm-added' as const, node: 'n', vm: { name: `vm-${i}`, uuid: `u-${i}`, state: 'running' as VmState } });

  it('drops a client that stops reading once its pending bytes pass the bound, and keeps serving the others', async () => {
    const cache = fakeCache();
    const hub = new InventoryEvents(cache, { coalesceMs: 1, maxPendingBytes: 4096 });
    const stuck = new StuckClient();
    const chunks: string[] = [];
    const good = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c.toString()), cb()) });
    try {
      hub.add(stuck);
      hub.add(good);
      for (let round = 0; round < 20 && hub.size === 2; round++) {
        cache.emit('changes', Array.from({ length: 20 }, (_, i) => change(round * 100 + i)));
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(stuck.destroyedByHub).toBe(true);
      expect(hub.size).toBe(1);
      expect(hub.dropped).toBe(1);
      expect(stuck.writableLength).toBeLessThan(4096 + 4096);
      expect(chunks.join('')).toMatch(/event: inventory\ndata: \{"now":\d+,"changes":\[\{"kind":"vm-added"/);
    } finally {
      hub.close();
    }
  });

  it('sends one event per window with the coalesced changes, and refuses clients over the limit', async () => {
    const cache = fakeCache();
    const hub = new InventoryEvents(cache, { coalesceMs: 30, maxClients: 1 });
    const chunks: string[] = [];
    const good = new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c.toString()), cb()) });
    try {
      expect(hub.add(good)).toBe(true);
      expect(hub.add(new Writable({ write: (_c, _e, cb) => cb() }))).toBe(false);
      cache.emit('changes', [change(1)]);
      cache.emit('changes', [change(2)]);
      await new Promise((r) => setTimeout(r, 80));
      const events = chunks.filter((c) => c.startsWith('event: inventory'));
      expect(events).toHaveLength(1);
      expect(JSON.parse(events[0]!.split('data: ')[1]!).changes.map((c: { vm: { name: string } }) => c.vm.name)).toEqual(['vm-1', 'vm-2']);
    } finally {
      hub.close();
    }
  });
});
