import type { CommandRunner } from '../process/run-command.js';

/**
 * virsh covers what @unraid/libvirt lacks (undefine flags, autostart, networks).
 * Every builder is pure and returns argv; names are validated before they get here.
 */
export function buildUndefineArgs(uri: string, name: string): string[] {
  // --nvram and the *-metadata flags make undefine work for UEFI VMs and VMs with snapshots.
  return ['-c', uri, 'undefine', '--domain', name, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'];
}

export function buildListAutostartArgs(uri: string): string[] {
  return ['-c', uri, 'list', '--all', '--autostart', '--name'];
}

export function buildNetInfoArgs(uri: string, network: string): string[] {
  return ['-c', uri, 'net-info', '--network', network];
}

export class Virsh {
  constructor(private readonly run: CommandRunner, private readonly uri: string) {}

  async undefine(name: string): Promise<void> {
    await this.run('virsh', buildUndefineArgs(this.uri, name), { timeoutMs: 30_000, failureMessage: `libvirt could not remove VM ${name}.` });
  }

  async autostartNames(): Promise<Set<string>> {
    const r = await this.run('virsh', buildListAutostartArgs(this.uri), { timeoutMs: 15_000, failureMessage: 'Could not read which VMs start with the host.' });
    return new Set(r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
  }

  async isNetworkActive(network: string): Promise<boolean> {
    const r = await this.run('virsh', buildNetInfoArgs(this.uri, network), { timeoutMs: 15_000, check: false });
    return r.exitCode === 0 && /^Active:\s+yes$/m.test(r.stdout);
  }
}
