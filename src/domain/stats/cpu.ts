/**
 * CPU % from two readings of cumulative CPU time: the share of the VM's vCPUs that was busy,
 * clamped to 0–100 (vCPU threads' accounting and wall clock are sampled at slightly
 * different instants, so a raw ratio can overshoot).
 */
export function cpuPercent(prevCpuNs: number, curCpuNs: number, elapsedMs: number, vcpus: number): number | null {
  if (!(elapsedMs > 0) || !(vcpus > 0)) return null;
  const delta = curCpuNs - prevCpuNs;
  // A smaller counter means the VM was restarted in between: no meaningful delta.
  if (delta < 0) return null;
  const pct = (delta / (elapsedMs * 1e6 * vcpus)) * 100;
  return Math.min(100, Math.max(0, pct));
}

/** Keeps the previous reading per VM so each tick can compute its delta. */
export class CpuDeltas {
  private prev = new Map<string, { cpuNs: number; atMs: number }>();

  /** `key` should identify one run of a VM (uuid + libvirt id), so a restart starts afresh. */
  next(key: string, cpuNs: number, atMs: number, vcpus: number): number | null {
    const p = this.prev.get(key);
    this.prev.set(key, { cpuNs, atMs });
    return p ? cpuPercent(p.cpuNs, cpuNs, atMs - p.atMs, vcpus) : null;
  }

  /** Forget VMs not seen in the latest tick, so the map does not grow forever. */
  retain(keys: Set<string>): void {
    for (const k of this.prev.keys()) if (!keys.has(k)) this.prev.delete(k);
  }
}
