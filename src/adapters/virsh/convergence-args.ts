/**
 * virsh commands that measure a guest and steer a running migration (libvirt 9.0,
 * QEMU 7.2). Pure argv builders; the domain is always named by UUID.
 */

/** Starts QEMU's dirty-rate measurement (page sampling) over `seconds`. */
export function buildDirtyRateCalcArgs(uri: string, uuid: string, seconds: number): string[] {
  return ['-c', uri, 'domdirtyrate-calc', '--domain', uuid, '--seconds', String(seconds)];
}

export function buildDirtyRateStatsArgs(uri: string, uuid: string): string[] {
  return ['-c', uri, 'domstats', '--dirtyrate', uuid];
}

/** Changes the allowed switch-over pause of the running migration. */
export function buildSetMaxDowntimeArgs(uri: string, uuid: string, ms: number): string[] {
  return ['-c', uri, 'migrate-setmaxdowntime', '--domain', uuid, '--downtime', String(ms)];
}

/** Switches a migration started with --postcopy to post-copy now. */
export function buildPostcopyArgs(uri: string, uuid: string): string[] {
  return ['-c', uri, 'migrate-postcopy', '--domain', uuid];
}

export interface DirtyRate {
  /** 0 = unstarted, 1 = measuring, 2 = measured (libvirt's virDomainDirtyRateStatus). */
  status: number;
  megabytesPerSecond: number | null;
}

/** `virsh domstats --dirtyrate` lines like "  dirtyrate.megabytes_per_second=16". */
export function parseDirtyRateStats(text: string): DirtyRate {
  const val = (k: string) => {
    const m = new RegExp(`^\\s*dirtyrate\\.${k}=(\\d+)\\s*$`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  };
  return { status: val('calc_status') ?? 0, megabytesPerSecond: val('megabytes_per_second') };
}

/** Pauses the VM's vCPUs (an emulated guest is paused for its whole copy: domain/convergence/memory-copy.ts). */
export function buildSuspendArgs(uri: string, uuid: string): string[] {
  return ['-c', uri, 'suspend', '--domain', uuid];
}

export function buildResumeArgs(uri: string, uuid: string): string[] {
  return ['-c', uri, 'resume', '--domain', uuid];
}
