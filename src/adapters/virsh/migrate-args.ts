export interface MigrateArgsInput {
  /** The source node's libvirt URI, as seen from where virsh runs. */
  sourceUri: string;
  /** The VM's UUID: virsh reads an all-digit name as a domain ID and a UUID-shaped one as a UUID. */
  uuid: string;
  /** Control channel to the destination libvirtd, e.g. qemu+ssh://root@10.0.0.2/system?… */
  destUri: string;
  /** The destination's data address: memory and disks go here, never to a resolved hostname. */
  dataAddress: string;
  mode: 'live' | 'offline';
  /** Optional cap in MiB/s. */
  bandwidthMiBps?: number;
  /** Live: the disk targets QEMU mirrors (exactly the plan's "copy" disks); none → no storage copy. */
  copyTargets?: readonly string[];
  /** Live: memory and NBD disk streams over QEMU's TLS (the destination checks our client certificate). */
  tls?: boolean;
  /** Live: QEMU's auto-converge vCPU throttle (first step, then per step, percent). */
  autoConverge?: { initialPercent: number; incrementPercent: number };
  /** Live: allow a later switch to post-copy (migrate-postcopy). */
  postcopy?: boolean;
  /** Live: multifd with this many connections (≥ 2). */
  parallelConnections?: number;
  /** Live: XBZRLE delta compression of re-sent pages, with this cache (bytes) on the source. */
  xbzrleCacheBytes?: number;
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
    args.push('--live', '--persistent', '--undefinesource', '--abort-on-error', '--migrateuri', `tcp://${host}`, '--listen-address', input.dataAddress);
    const targets = input.copyTargets ?? [];
    // Without --migrate-disks libvirt picks the disks itself (and skips read-only ones
    // silently); the plan decides, so the list is always explicit.
    if (targets.length) args.push('--copy-storage-all', '--migrate-disks', targets.join(','), '--disks-uri', `tcp://${host}`);
    // The source checks the destination's certificate against the data address it connects to.
    if (input.tls) args.push('--tls');
    if (input.autoConverge) args.push('--auto-converge', '--auto-converge-initial', String(input.autoConverge.initialPercent), '--auto-converge-increment', String(input.autoConverge.incrementPercent));
    if (input.postcopy) args.push('--postcopy');
    if (input.parallelConnections && input.parallelConnections >= 2) args.push('--parallel', '--parallel-connections', String(input.parallelConnections));
    if (input.xbzrleCacheBytes) args.push('--compressed', '--comp-methods', 'xbzrle', '--comp-xbzrle-cache', String(input.xbzrleCacheBytes));
  } else {
    args.push('--offline', '--persistent', '--undefinesource');
  }
  if (input.bandwidthMiBps) args.push('--bandwidth', String(input.bandwidthMiBps));
  args.push('--domain', input.uuid, '--desturi', input.destUri);
  return args;
}

export function buildJobInfoArgs(uri: string, uuid: string, completed: boolean): string[] {
  return ['-c', uri, 'domjobinfo', '--domain', uuid, '--rawstats', ...(completed ? ['--completed', '--keep-completed'] : [])];
}

export function buildJobAbortArgs(uri: string, uuid: string): string[] {
  return ['-c', uri, 'domjobabort', '--domain', uuid];
}

/** Ejects (or re-inserts) removable media; --force because a guest may hold the tray locked. */
export function buildChangeMediaArgs(uri: string, uuid: string, target: string, media: { insert: string } | 'eject', running: boolean): string[] {
  const what = media === 'eject' ? ['--eject', '--force'] : ['--source', media.insert, '--insert'];
  return ['-c', uri, 'change-media', '--domain', uuid, '--path', target, ...what, '--config', ...(running ? ['--live'] : [])];
}
