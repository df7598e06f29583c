export interface MigrateArgsInput {
  /** The source node's libvirt URI, as seen from where virsh runs. */
  sourceUri: string;
  vm: string;
  /** Control channel to the destination libvirtd, e.g. qemu+ssh://root@10.0.0.2/system?… */
  destUri: string;
  /** The destination's data address: memory and disks go here, never to a resolved hostname. */
  dataAddress: string;
  mode: 'live' | 'offline';
  /** Optional cap in MiB/s. */
  bandwidthMiBps?: number;
}

/** IPv6 addresses need brackets inside a URI. */
export function hostForUri(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

/**
 * `virsh migrate` for a VM without shared storage. Live: memory and all disks are
 * copied while it runs, it is paused briefly, the rest is copied, and it resumes on
 * the destination; --persistent --undefinesource moves the definition too. The data
 * address is given three times: where source QEMU connects for memory (migrateuri),
 * for disks (disks-uri, NBD) and where destination QEMU listens (listen-address).
 */
export function buildMigrateArgs(input: MigrateArgsInput): string[] {
  const host = hostForUri(input.dataAddress);
  const args = ['-c', input.sourceUri, 'migrate'];
  if (input.mode === 'live') {
    args.push('--live', '--copy-storage-all', '--persistent', '--undefinesource', '--abort-on-error',
      '--migrateuri', `tcp://${host}`, '--disks-uri', `tcp://${host}`, '--listen-address', input.dataAddress);
  } else {
    args.push('--offline', '--persistent', '--undefinesource');
  }
  if (input.bandwidthMiBps) args.push('--bandwidth', String(input.bandwidthMiBps));
  args.push('--domain', input.vm, '--desturi', input.destUri);
  return args;
}

export function buildJobInfoArgs(uri: string, vm: string, completed: boolean): string[] {
  return ['-c', uri, 'domjobinfo', '--domain', vm, '--rawstats', ...(completed ? ['--completed', '--keep-completed'] : [])];
}

export function buildJobAbortArgs(uri: string, vm: string): string[] {
  return ['-c', uri, 'domjobabort', '--domain', vm];
}
