import { describe, expect, it } from 'vitest';
import { sideState, type VirshOn } from '../../src/services/migration/vm-sides.js';

const UUID = '6f1c2a4e-0d55-4c1b-9a0e-3f2d1b7c8e90';

/** virsh answering from a script of results, one per call, in order. */
function scripted(...answers: Array<{ exitCode: number; stdout?: string; stderr?: string }>): { virsh: VirshOn; calls: string[][] } {
  const calls: string[][] = [];
  const virsh: VirshOn = async (args) => {
    calls.push(args);
    const a = answers.shift();
    if (!a) throw new Error(`unexpected virsh call ${args.join(' ')}`);
    return { stdout: a.stdout ?? '', stderr: a.stderr ?? '', exitCode: a.exitCode };
  };
  return { virsh, calls };
}

describe('the VM state on one node (by UUID)', () => {
  it('is null when the UUID is not listed, without asking its state', async () => {
    const { virsh, calls } = scripted({ exitCode: 0, stdout: 'aaaaaaaa-0000-0000-0000-000000000000\n' });
    expect(await sideState(virsh, UUID)).toBeNull();
    expect(calls).toEqual([['list', '--all', '--uuid']]);
  });

  it('reads the state and its reason by UUID', async () => {
    const { virsh, calls } = scripted({ exitCode: 0, stdout: `${UUID}\n` }, { exitCode: 0, stdout: 'paused (migrating)\n' });
    expect(await sideState(virsh, UUID)).toEqual({ state: 'paused', reason: 'migrating' });
    expect(calls[1]).toEqual(['domstate', '--reason', '--domain', UUID]);
  });

  it('is null when a finishing migration undefines the VM between the listing and the state query', async () => {
    const { virsh } = scripted({ exitCode: 0, stdout: `${UUID}\n` }, { exitCode: 1, stderr: 'error: failed to get domain' }, { exitCode: 0, stdout: '\n' });
    expect(await sideState(virsh, UUID)).toBeNull();
  });

  it('is an error naming libvirt when the VM is still listed but its state cannot be read', async () => {
    const { virsh } = scripted({ exitCode: 0, stdout: `${UUID}\n` }, { exitCode: 1, stderr: 'error: timed out' }, { exitCode: 0, stdout: `${UUID}\n` });
    await expect(sideState(virsh, UUID)).rejects.toMatchObject({ code: 'LIBVIRT_FAILED', message: expect.stringContaining('timed out') });
  });

  it('is an error when libvirt cannot list its VMs', async () => {
    const { virsh } = scripted({ exitCode: 1, stderr: 'error: failed to connect to the hypervisor' });
    await expect(sideState(virsh, UUID)).rejects.toMatchObject({ code: 'LIBVIRT_FAILED' });
  });
});
