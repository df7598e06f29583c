import { describe, expect, it } from 'vitest';
import { parseDomJobInfoRaw } from '../../src/domain/migration-progress.js';
import { buildJobAbortArgs, buildJobInfoArgs, buildMigrateArgs } from '../../src/adapters/virsh/migrate-args.js';
import { expectGolden } from '../helpers/golden.js';

// Shape of `virsh domjobinfo --rawstats` during a storage + memory migration (libvirt 9).
const RUNNING = `Job type: 2

operation: 4
time_elapsed: 1520
time_remaining: 0
data_total: 1342177280
data_processed: 671088640
data_remaining: 671088640
memory_total: 268435456
memory_processed: 134217728
memory_remaining: 134217728
memory_bps: 104857600
disk_total: 1073741824
disk_processed: 536870912
disk_remaining: 536870912
disk_bps: 104857600
`;

describe('parseDomJobInfoRaw', () => {
  it('turns a running job into percent, bytes, memory and disk parts, speed and ETA', () => {
    expect(parseDomJobInfoRaw(RUNNING)).toEqual({
      percent: 50,
      dataTotalBytes: 1342177280,
      dataProcessedBytes: 671088640,
      dataRemainingBytes: 671088640,
      memoryTotalBytes: 268435456,
      memoryProcessedBytes: 134217728,
      diskTotalBytes: 1073741824,
      diskProcessedBytes: 536870912,
      speedBps: 209715200,
      etaSec: 3,
      elapsedMs: 1520,
      downtimeMs: null,
      memoryIteration: null,
      memoryRemainingBytes: 134217728,
      dirtyRateBps: null,
      throttlePercent: null,
      postcopyRequests: null,
      xbzrle: null,
    });
  });

  it('reads the downtime of a completed job', () => {
    const done = parseDomJobInfoRaw(`Job type: 3\n\ndata_total: 100\ndata_processed: 100\ndata_remaining: 0\ndowntime: 224\n`);
    expect(done).toMatchObject({ percent: 100, downtimeMs: 224, speedBps: null, etaSec: null });
  });

  it('returns null when no job runs or no counters exist yet', () => {
    expect(parseDomJobInfoRaw('Job type: 0\n\n')).toBeNull();
    expect(parseDomJobInfoRaw('Job type:         None\n')).toBeNull();
    expect(parseDomJobInfoRaw('Job type: 2\n\noperation: 4\n')).toBeNull();
    expect(parseDomJobInfoRaw('')).toBeNull();
  });

  it('ignores garbage values instead of producing NaN', () => {
    expect(parseDomJobInfoRaw('Job type: 2\ndata_total: 10\ndata_processed: x\n')).toBeNull();
  });
});

describe('buildMigrateArgs', () => {
  it('sends memory and exactly the planned disks to the data address, naming the VM by UUID (live)', () => {
    expectGolden('virsh-migrate-live', buildMigrateArgs({
      sourceUri: 'qemu:///system', uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', destUri: 'qemu+ssh://root@10.77.0.12/system?keyfile=/etc/kvm-ferry/id_ed25519', dataAddress: '10.77.0.12', mode: 'live', copyTargets: ['vda', 'vdb'],
    }));
  });

  it('asks for QEMU TLS on the memory and disk streams when the transport is tls, never for an offline move', () => {
    const base = { sourceUri: 'qemu:///system', uuid: 'u', destUri: 'x', dataAddress: '10.0.0.2', copyTargets: ['vda'] };
    expect(buildMigrateArgs({ ...base, mode: 'live', tls: true })).toContain('--tls');
    expect(buildMigrateArgs({ ...base, mode: 'live', tls: false })).not.toContain('--tls');
    expect(buildMigrateArgs({ ...base, mode: 'offline', tls: true })).not.toContain('--tls');
  });

  it('copies no storage when the plan mirrors no disk (all shared or copied first)', () => {
    const args = buildMigrateArgs({ sourceUri: 'qemu:///system', uuid: 'u', destUri: 'x', dataAddress: '10.0.0.2', mode: 'live', copyTargets: [] });
    expect(args).not.toContain('--copy-storage-all');
    expect(args).not.toContain('--migrate-disks');
    expect(args).not.toContain('--disks-uri');
  });

  it('moves only the definition of a shut-off VM (offline), and brackets IPv6', () => {
    expectGolden('virsh-migrate-offline', buildMigrateArgs({
      sourceUri: 'qemu:///system', uuid: '6a1a5c3e-0000-4000-8000-000000000001', destUri: 'qemu+ssh://root@[fd00::2]/system', dataAddress: 'fd00::2', mode: 'offline', bandwidthMiBps: 100,
    }));
    const live = buildMigrateArgs({ sourceUri: 'qemu:///system', uuid: 'a', destUri: 'x', dataAddress: 'fd00::2', mode: 'live' });
    expect(live[live.indexOf('--migrateuri') + 1]).toBe('tcp://[fd00::2]');
  });

  it('builds job info and abort argv', () => {
    expect(buildJobInfoArgs('qemu:///system', 'a', true)).toEqual(['-c', 'qemu:///system', 'domjobinfo', '--domain', 'a', '--rawstats', '--completed', '--keep-completed']);
    expect(buildJobAbortArgs('qemu:///system', 'a')).toEqual(['-c', 'qemu:///system', 'domjobabort', '--domain', 'a']);
  });
});
