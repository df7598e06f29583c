import { describe, expect, it } from 'vitest';
import { decideMemoryCopy, parseQemuVersion, pausedForecast } from '../../src/domain/convergence/memory-copy.js';
import { describePausedMove, predictMigration } from '../../src/domain/convergence/index.js';
import { defaultConvergenceConfig, parseConvergenceConfig } from '../../src/config-convergence.js';
import { buildResumeArgs, buildSuspendArgs } from '../../src/adapters/virsh/convergence-args.js';
import { checkPeerCommand } from '../../src/domain/peer-command.js';

// What the lab's Debian 12 QEMU and a later one print (first line of `qemu-system-x86_64 --version`).
const DEBIAN_12 = 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)';
const QEMU_9 = 'QEMU emulator version 9.0.2';
const MiB = 1024 ** 2;

describe('how a live move copies memory', () => {
  it('reads QEMU versions', () => {
    expect(parseQemuVersion(DEBIAN_12)).toEqual([7, 2, 22]);
    expect(parseQemuVersion('QEMU emulator version 8.2')).toEqual([8, 2, 0]);
    expect(parseQemuVersion('qemu-kvm: command not found')).toBeNull();
  });

  it('a KVM guest is copied live whatever the QEMU: KVM tracks its writes', () => {
    for (const setting of ['auto', 'paused', 'live'] as const) {
      expect(decideMemoryCopy({ vm: 'web', domainType: 'kvm', qemuVersionText: DEBIAN_12, setting })).toEqual({ mode: 'live', emulated: false, qemuVersion: null, reason: null });
    }
  });

  it('an emulated guest on QEMU before 9.0 is paused for the whole copy, and the sentence says why', () => {
    const d = decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: DEBIAN_12, setting: 'auto' });
    expect(d).toMatchObject({ mode: 'paused', emulated: true, qemuVersion: '7.2.22' });
    expect(d.reason).toBe('VM web is emulated (TCG) and QEMU 7.2.22 on this node can lose memory writes of an emulated guest during a live copy (fixed in QEMU 9.0), so it is paused for the whole copy (disks and memory): nothing is lost, but it does not run until it resumes on the destination.');
    expect(decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: 'QEMU emulator version 8.2.9', setting: 'auto' }).mode).toBe('paused');
  });

  it('an unreadable version counts as affected: the safe side', () => {
    const d = decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: null, setting: 'auto' });
    expect(d.mode).toBe('paused');
    expect(d.reason).toMatch(/could not be read/);
  });

  it('an emulated guest on QEMU 9.0 or later is copied live', () => {
    const d = decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: QEMU_9, setting: 'auto' });
    expect(d).toMatchObject({ mode: 'live', qemuVersion: '9.0.2' });
    expect(d.reason).toMatch(/copies its memory safely while it runs/);
  });

  it('the config can force either way, and "live" on an affected QEMU says the risk', () => {
    expect(decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: QEMU_9, setting: 'paused' }).mode).toBe('paused');
    const live = decideMemoryCopy({ vm: 'web', domainType: 'qemu', qemuVersionText: DEBIAN_12, setting: 'live' });
    expect(live.mode).toBe('live');
    expect(live.reason).toMatch(/can lose memory writes/);
  });

  it('a paused move is one pass: RAM QEMU holds plus the copied disks over the link, checked against the budget', () => {
    expect(pausedForecast({ ramBytes: 256 * MiB, touchedRamBytes: 100 * MiB, diskBytes: 50 * MiB, bps: 10 * MiB, budgetSec: 60 })).toEqual({ totalSec: 18, pauseSec: 18, converges: true });
    expect(pausedForecast({ ramBytes: 256 * MiB, touchedRamBytes: null, diskBytes: 0, bps: 1 * MiB, budgetSec: 60 }).converges).toBe(false);
  });

  it('says the pause in words', () => {
    const p = predictMigration({ ramBytes: 128 * MiB, touchedRamBytes: null, diskBytes: 0, dirtyBps: 20e6, linkBps: 10e6, capBps: null, settings: { policy: 'safe', maxDowntimeMs: 500, budgetSec: 60, stallIterations: 3, throttleInitialPercent: 20, throttleIncrementPercent: 10 } });
    expect(describePausedMove(p, 14.4, 'db', 'lab-b', 60)).toBe('The link to lab-b carries 10 MB/s. db is paused while it moves: it should be back, running on lab-b, in about 14 s.');
    expect(describePausedMove(p, 200, 'db', 'lab-b', 60)).toMatch(/longer than its 60 s budget/);
  });
});

describe('emulatedMemoryCopy in the config, and the commands it needs', () => {
  const fail = (key: string, message: string): never => {
    throw new Error(`${key}: ${message}`);
  };
  it('defaults to auto; a bad value is refused naming the key', () => {
    expect(defaultConvergenceConfig().emulatedMemoryCopy).toBe('auto');
    expect(parseConvergenceConfig({ emulatedMemoryCopy: 'paused' }, fail).emulatedMemoryCopy).toBe('paused');
    expect(() => parseConvergenceConfig({ emulatedMemoryCopy: 'sometimes' }, fail)).toThrow(/^convergence\.emulatedMemoryCopy: must be one of auto, paused, live$/);
  });
  it('suspend and resume by UUID; a peer may resume a VM by UUID and nothing else new', () => {
    const u = '8f52e39d-8338-4a62-aa95-c973db789b3c';
    expect(buildSuspendArgs('qemu:///system', u)).toEqual(['-c', 'qemu:///system', 'suspend', '--domain', u]);
    expect(buildResumeArgs('qemu:///system', u)).toEqual(['-c', 'qemu:///system', 'resume', '--domain', u]);
    const policy = { dirs: ['/var/lib/kvm-ferry/images'] };
    expect(checkPeerCommand(`virsh -c qemu:///system resume --domain ${u}`, policy).ok).toBe(true);
    for (const bad of ['virsh -c qemu:///system resume --domain web', 'virsh -c qemu:///system suspend --domain ' + u, `virsh -c qemu:///system resume --domain ${u} --force`]) {
      expect(checkPeerCommand(bad, policy).ok, bad).toBe(false);
    }
  });
});
