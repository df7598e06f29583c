import type { CommandRunner } from '../process/run-command.js';
import type { DomainRef } from '../libvirt/domain.js';
import { requireUuid } from '../../domain/uuid.js';

/**
 * virsh covers what @unraid/libvirt lacks (undefine flags, autostart, networks).
 * Every builder is pure and returns argv. A domain is always named by its UUID:
 * virsh reads an all-digit `--domain` value as a domain id first, so a VM named `4`
 * would hit whichever VM has id 4.
 */
export function buildUndefineArgs(uri: string, uuid: string): string[] {
  // --nvram and the *-metadata flags make undefine work for UEFI VMs and VMs with snapshots.
  return ['-c', uri, 'undefine', '--domain', requireUuid(uuid), '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'];
}

/** UUIDs, not names: the set is matched against each VM's UUID. */
export function buildListAutostartArgs(uri: string): string[] {
  return ['-c', uri, 'list', '--all', '--autostart', '--uuid'];
}

export function buildNetInfoArgs(uri: string, network: string): string[] {
  return ['-c', uri, 'net-info', '--network', network];
}

export class Virsh {
  constructor(private readonly run: CommandRunner, private readonly uri: string) {}

  async undefine(vm: DomainRef): Promise<void> {
    await this.run('virsh', buildUndefineArgs(this.uri, vm.uuid), { timeoutMs: 30_000, failureMessage: `libvirt could not remove VM ${vm.name}.` });
  }

  async autostartUuids(): Promise<Set<string>> {
    const r = await this.run('virsh', buildListAutostartArgs(this.uri), { timeoutMs: 15_000, failureMessage: 'Could not read which VMs start with the host.' });
    return new Set(r.stdout.split('\n').map((l) => l.trim().toLowerCase()).filter(Boolean));
  }

  async isNetworkActive(network: string): Promise<boolean> {
    const r = await this.run('virsh', buildNetInfoArgs(this.uri, network), { timeoutMs: 15_000, check: false });
    return r.exitCode === 0 && /^Active:\s+yes$/m.test(r.stdout);
  }
}
