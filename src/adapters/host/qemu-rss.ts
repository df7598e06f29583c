import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Resident memory of a running VM's QEMU process, read from /proc: the honest host-side
 * "used" figure when the guest reports no balloon statistics. libvirt writes the QEMU pid
 * to <pidDir>/<name>.pid; the cmdline check guards against a stale pid file naming a
 * recycled pid.
 */
export class QemuRss {
  private pids = new Map<string, number>();

  constructor(private readonly pidDir = '/run/libvirt/qemu', private readonly proc = '/proc') {}

  /** KiB, or null when there is no such process (test driver, remote URI, no permission). */
  async rssKiB(name: string): Promise<number | null> {
    const pid = this.pids.get(name) ?? (await this.findPid(name));
    if (pid === null) return null;
    const kib = await this.readRss(pid);
    if (kib === null) this.pids.delete(name);
    return kib;
  }

  /** The running VM's QEMU process id, or null (checked against its command line). */
  pidOf(name: string): Promise<number | null> {
    return this.findPid(name);
  }

  private async findPid(name: string): Promise<number | null> {
    const text = await readFile(join(this.pidDir, `${name}.pid`), 'utf8').catch(() => null);
    const pid = text && /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
    if (pid === null) return null;
    const cmdline = await readFile(join(this.proc, String(pid), 'cmdline'), 'utf8').catch(() => '');
    if (!cmdline.split('\0').some((a) => a === `guest=${name},debug-threads=on` || a.startsWith(`guest=${name},`) || a === name)) return null;
    this.pids.set(name, pid);
    return pid;
  }

  /**
   * Read synchronously: a /proc file is made by the kernel on read and never waits for a disk,
   * and fs/promises' readFile costs four thread-pool hops per file — measured (bench/stats.ts,
   * 50 real guests) as the largest part of a tick.
   */
  private async readRss(pid: number): Promise<number | null> {
    let status: string | null;
    try {
      status = readFileSync(join(this.proc, String(pid), 'status'), 'utf8');
    } catch {
      status = null;
    }
    const m = status ? /^VmRSS:\s+(\d+)\s+kB/m.exec(status) : null;
    return m ? Number(m[1]) : null;
  }

  /** Drop cached pids of VMs no longer running. */
  retain(names: Set<string>): void {
    for (const n of this.pids.keys()) if (!names.has(n)) this.pids.delete(n);
  }
}
