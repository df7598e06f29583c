/** One progress sample of a migration job, in the units the page shows. */
export interface MigrationProgress {
  /** 0–100, from processed / total data (memory + disk). */
  percent: number;
  dataTotalBytes: number;
  dataProcessedBytes: number;
  dataRemainingBytes: number;
  memoryTotalBytes: number | null;
  memoryProcessedBytes: number | null;
  diskTotalBytes: number | null;
  diskProcessedBytes: number | null;
  /** Bytes per second, memory and disk streams added. */
  speedBps: number | null;
  etaSec: number | null;
  elapsedMs: number | null;
  /** Only in the completed job's statistics (while running: QEMU's expected downtime). */
  downtimeMs: number | null;
  /** QEMU's memory pass counter (0 while disks are mirrored; 1 = the first full pass). */
  memoryIteration: number | null;
  memoryRemainingBytes: number | null;
  /** Bytes/s the guest dirtied in the last pass, as QEMU counts it. */
  dirtyRateBps: number | null;
  /** auto-converge's current vCPU throttle, percent. */
  throttlePercent: number | null;
  postcopyRequests: number | null;
  /** XBZRLE, when on: pages and bytes sent as deltas, cache misses (sent whole), overflows (delta larger than the page). */
  xbzrle: { pages: number; bytes: number; cacheMisses: number | null; overflow: number | null } | null;
}

const num = (raw: Record<string, string>, key: string): number | null => {
  const v = raw[key];
  if (v === undefined || !/^\d+(\.\d+)?$/.test(v.trim())) return null;
  return Number(v.trim());
};

function xbzrleOf(raw: Record<string, string>): MigrationProgress['xbzrle'] {
  const pages = num(raw, 'compression_pages');
  const bytes = num(raw, 'compression_bytes');
  if (pages === null || bytes === null) return null;
  return { pages, bytes, cacheMisses: num(raw, 'compression_cache_misses'), overflow: num(raw, 'compression_overflow') };
}

/**
 * Parses `virsh domjobinfo --rawstats` ("Job type: N" then "name: value" lines with
 * libvirt's typed-parameter names). Returns null when no job is running (type 0) or
 * the job carries no data counters yet.
 */
export function parseDomJobInfoRaw(text: string): MigrationProgress | null {
  const raw: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_. ]*?)\s*:\s*(.*?)\s*$/.exec(line);
    if (m) raw[m[1]!.toLowerCase()] = m[2]!;
  }
  const type = raw['job type'];
  if (type === undefined || type === '0' || /^none$/i.test(type)) return null;
  const total = num(raw, 'data_total');
  const processed = num(raw, 'data_processed');
  if (total === null || processed === null) return null;
  const remaining = num(raw, 'data_remaining') ?? Math.max(0, total - processed);
  const memBps = num(raw, 'memory_bps');
  const diskBps = num(raw, 'disk_bps');
  const speed = memBps === null && diskBps === null ? null : (memBps ?? 0) + (diskBps ?? 0);
  const pageSize = num(raw, 'memory_page_size') ?? 4096;
  const dirtyPages = num(raw, 'memory_dirty_rate');
  return {
    percent: truthfulPercent(total - remaining, total, remaining),
    dataTotalBytes: total,
    dataProcessedBytes: processed,
    dataRemainingBytes: remaining,
    memoryTotalBytes: num(raw, 'memory_total'),
    memoryProcessedBytes: num(raw, 'memory_processed'),
    diskTotalBytes: num(raw, 'disk_total'),
    diskProcessedBytes: num(raw, 'disk_processed'),
    speedBps: speed,
    etaSec: speed && speed > 0 ? Math.round(remaining / speed) : null,
    elapsedMs: num(raw, 'time_elapsed'),
    downtimeMs: num(raw, 'downtime'),
    memoryIteration: num(raw, 'memory_iteration'),
    memoryRemainingBytes: num(raw, 'memory_remaining'),
    dirtyRateBps: dirtyPages === null ? null : dirtyPages * pageSize,
    throttlePercent: num(raw, 'auto_converge_throttle'),
    postcopyRequests: num(raw, 'memory_postcopy_requests'),
    xbzrle: xbzrleOf(raw),
  };
}

/**
 * Percent of the data in place: 100 only when nothing remains, never rounded up to it
 * (a pre-copy that resends dirtied memory sits below 100 — and may fall — until it is done).
 */
export function truthfulPercent(done: number, total: number, remaining: number): number {
  if (total <= 0) return 0;
  if (remaining <= 0) return 100;
  return Math.max(0, Math.min(99.9, Math.floor((1000 * done) / total) / 10));
}
